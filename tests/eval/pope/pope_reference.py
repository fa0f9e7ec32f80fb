"""POPE's official scoring, transcribed for the tests (not shipped) from AoiDragon/POPE evaluate.py at commit
08d957b917e5a378a2f99d35b6293c536a66298b: the same statements, the file reading and printing replaced by
arguments and a returned dict (`answers`: [{'answer': text}] in question order, `label_list`: 'yes'/'no')."""

# ruff: noqa: SIM108, B905  (a line-for-line transcription)


def official_evaluate(answers, label_list):
    answers = [dict(a) for a in answers]
    label_list = list(label_list)
    for answer in answers:
        text = answer["answer"]

        # Only keep the first sentence
        if text.find(".") != -1:
            text = text.split(".")[0]

        text = text.replace(",", "")
        words = text.split(" ")
        if "No" in words or "not" in words or "no" in words:
            answer["answer"] = "no"
        else:
            answer["answer"] = "yes"

    for i in range(len(label_list)):
        if label_list[i] == "no":
            label_list[i] = 0
        else:
            label_list[i] = 1

    pred_list = []
    for answer in answers:
        if answer["answer"] == "no":
            pred_list.append(0)
        else:
            pred_list.append(1)

    pos = 1
    neg = 0
    yes_ratio = pred_list.count(1) / len(pred_list)

    TP, TN, FP, FN = 0, 0, 0, 0
    for pred, label in zip(pred_list, label_list):
        if pred == pos and label == pos:
            TP += 1
        elif pred == pos and label == neg:
            FP += 1
        elif pred == neg and label == neg:
            TN += 1
        elif pred == neg and label == pos:
            FN += 1

    precision = float(TP) / float(TP + FP)
    recall = float(TP) / float(TP + FN)
    f1 = 2 * precision * recall / (precision + recall)
    acc = (TP + TN) / (TP + TN + FP + FN)
    return {
        "tp": TP,
        "fp": FP,
        "tn": TN,
        "fn": FN,
        "accuracy": acc,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": yes_ratio,
    }
