# ruff: noqa: UP031, B007, B905, E501  (a line-for-line transcription)
"""CHAIR's reference counting, transcribed for the tests (not shipped) from LisaAnne/Hallucination
utils/chair.py at commit 6e4d33c4bedf6dfcd24c61bf527f40714717be47 (Python 2 there): `CHAIR.__init__`
(synonyms, double words), `caption_to_words`, `get_annotations_from_segments`, `get_annotations_from_captions`
and `compute_chair`, line for line, on this repository's copy of data/synonyms.txt. Its two library calls are
passed in: `word_tokenize` (nltk) and `singularize` (pattern.en), neither installable here (NLTK's punkt data
is a download, Pattern 3.6 is not on the package index)."""

from __future__ import annotations

from collections.abc import Callable


class ReferenceChair:
    def __init__(self, imids, synonyms_txt: str, word_tokenize: Callable, singularize: Callable):
        self.word_tokenize, self.singularize = word_tokenize, singularize
        self.imid_to_objects = {imid: [] for imid in imids}
        synonyms = [s for s in synonyms_txt.splitlines(True) if not s.startswith("#")]  # our note lines
        synonyms = [s.strip().split(", ") for s in synonyms]
        self.mscoco_objects = []
        self.inverse_synonym_dict = {}
        for synonym in synonyms:
            self.mscoco_objects.extend(synonym)
            for s in synonym:
                self.inverse_synonym_dict[s] = synonym[0]
        coco_double_words = [
            "motor bike",
            "motor cycle",
            "air plane",
            "traffic light",
            "street light",
            "traffic signal",
            "stop light",
            "fire hydrant",
            "stop sign",
            "parking meter",
            "suit case",
            "sports ball",
            "baseball bat",
            "baseball glove",
            "tennis racket",
            "wine glass",
            "hot dog",
            "cell phone",
            "mobile phone",
            "teddy bear",
            "hair drier",
            "potted plant",
            "bow tie",
            "laptop computer",
            "stove top oven",
            "hot dog",
            "teddy bear",
            "home plate",
            "train track",
        ]
        animal_words = [
            "bird",
            "cat",
            "dog",
            "horse",
            "sheep",
            "cow",
            "elephant",
            "bear",
            "zebra",
            "giraffe",
            "animal",
            "cub",
        ]
        vehicle_words = ["jet", "train"]
        self.double_word_dict = {}
        for double_word in coco_double_words:
            self.double_word_dict[double_word] = double_word
        for animal_word in animal_words:
            self.double_word_dict["baby %s" % animal_word] = animal_word
            self.double_word_dict["adult %s" % animal_word] = animal_word
        for vehicle_word in vehicle_words:
            self.double_word_dict["passenger %s" % vehicle_word] = vehicle_word
        self.double_word_dict["bow tie"] = "tie"
        self.double_word_dict["toilet seat"] = "toilet"
        self.double_word_dict["wine glas"] = "wine glass"

    def caption_to_words(self, caption):
        words = self.word_tokenize(caption.lower())
        words = [self.singularize(w) for w in words]
        i = 0
        double_words = []
        idxs = []
        while i < len(words):
            idxs.append(i)
            double_word = " ".join(words[i : i + 2])
            if double_word in self.double_word_dict:
                double_words.append(self.double_word_dict[double_word])
                i += 2
            else:
                double_words.append(words[i])
                i += 1
        words = double_words
        if ("toilet" in words) & ("seat" in words):
            words = [word for word in words if word != "seat"]
        idxs = [idxs[idx] for idx, word in enumerate(words) if word in set(self.mscoco_objects)]
        words = [word for word in words if word in set(self.mscoco_objects)]
        node_words = []
        for word in words:
            node_words.append(self.inverse_synonym_dict[word])
        return words, node_words, idxs, double_words

    def get_annotations_from_segments(self, coco_segments):
        id_to_name = {}
        for cat in coco_segments["categories"]:
            id_to_name[cat["id"]] = cat["name"]
        for annotation in coco_segments["annotations"]:
            imid = annotation["image_id"]
            if imid in self.imid_to_objects:
                node_word = self.inverse_synonym_dict[id_to_name[annotation["category_id"]]]
                self.imid_to_objects[imid].append(node_word)
        for imid in self.imid_to_objects:
            self.imid_to_objects[imid] = set(self.imid_to_objects[imid])

    def get_annotations_from_captions(self, coco_caps):
        for annotation in coco_caps["annotations"]:
            imid = annotation["image_id"]
            if imid in self.imid_to_objects:
                _, node_words, _, _ = self.caption_to_words(annotation["caption"])
                self.imid_to_objects[imid].update(node_words)
        for imid in self.imid_to_objects:
            self.imid_to_objects[imid] = set(self.imid_to_objects[imid])

    def compute_chair(self, caps):
        """caps: [{'image_id', 'caption'}] (the reference reads them from imgToEval; its BLEU etc. left out)."""
        num_caps = 0.0
        num_hallucinated_caps = 0.0
        hallucinated_word_count = 0.0
        coco_word_count = 0.0
        for cap_eval in caps:
            cap = cap_eval["caption"]
            imid = cap_eval["image_id"]
            words, node_words, idxs, raw_words = self.caption_to_words(cap)
            gt_objects = self.imid_to_objects[imid]
            coco_word_count += len(node_words)
            hallucinated = False
            for word, node_word, idx in zip(words, node_words, idxs):
                if node_word not in gt_objects:
                    hallucinated_word_count += 1
                    hallucinated = True
            num_caps += 1
            if hallucinated:
                num_hallucinated_caps += 1
        return {
            "CHAIRs": num_hallucinated_caps / num_caps,
            "CHAIRi": hallucinated_word_count / coco_word_count,
        }
