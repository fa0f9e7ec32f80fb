"""python -m clipdpo_mini COMMAND ...: build the miniature world, train its models, run repro-mini.

world OUT                   scenes: OUT/{ranker,sft,pool}/, the AMBER folder OUT/heldout/ (val, test)
ranker WORLD_SPLIT OUT      train the open_clip ranker on a split's true captions (--random: untrained)
captioner SPLIT RANKER OUT  SFT the tiny LLaVA on biased captions, vision tower from RANKER
agreement PAIRS SPLIT       pairs vs the split's ground truth (JSON)
swap PAIRS                  the random-swap control: chosen/rejected swapped at random
repro OUT                   the whole benchmark (make repro-mini)
rankers OUT                 repro's steps before training: ranking options' pair agreement, the probe
demo-models [OUT]           train the models `make demo` ships (default: the package's demo_models/)
demo-data OUT               the demo's scenes; prints shell variables (examples/demo.sh evals them)
compare BEFORE AFTER BEFORE_RESPONSES AFTER_RESPONSES   the demo's before/after AMBER line
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m clipdpo_mini", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("world")
    w.add_argument("out")
    w.add_argument("--seed", type=int, default=0)
    for name, default in (("ranker", 6000), ("sft", 6000), ("pool", 600), ("val", 150), ("test", 250)):
        w.add_argument(f"--{name}", type=int, default=default, help=f"scenes (default {default})")
    r = sub.add_parser("ranker")
    r.add_argument("split")
    r.add_argument("out")
    r.add_argument("--steps", type=int, default=500)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--random", action="store_true", help="write the untrained model only")
    c = sub.add_parser("captioner")
    c.add_argument("split")
    c.add_argument("ranker", help="local-dir:DIR of the ranker ('none': a random vision tower)")
    c.add_argument("out")
    c.add_argument("--steps", type=int, default=800)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--bias", type=float, default=0.7)
    a = sub.add_parser("agreement")
    a.add_argument("pairs")
    a.add_argument("split")
    s = sub.add_parser("swap")
    s.add_argument("pairs")
    s.add_argument("--seed", type=int, default=0)
    rp = sub.add_parser("repro")
    rk = sub.add_parser("rankers", help="repro's steps before training, and the ranking options' agreement")
    for parser in (rp, rk):
        parser.add_argument("out")
        parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        parser.add_argument("--jobs", type=int, default=3, help="seeds run side by side (3 on 2 cores)")
        parser.add_argument(
            "--set",
            nargs="*",
            default=[],
            metavar="FIELD=VALUE",
            help="override a ReproSettings field (e.g. sft_steps=600 n_pool=500 rounds=3; "
            "candidates=clip-dpo keeps the named candidate recipes, controls=random-images,random-swap-dpo "
            "the named controls; "
            "ranker_options=fused,clause-min the ranking options measured, train_ranker_options= those "
            "also trained; sources=injected,noised,povid,ranked+povid POVID's pair-source arms, off by "
            "default; rounds=3 round_controls=random-ranker: that control's rounds too)",
        )
    dm = sub.add_parser("demo-models")
    dm.add_argument("out", nargs="?", default=None)
    dd = sub.add_parser("demo-data")
    dd.add_argument("out")
    cp = sub.add_parser("compare")
    for name in ("before", "after", "before_responses", "after_responses"):
        cp.add_argument(name)
    args = p.parse_args(argv)

    from clipdpo_mini import world as mw

    if args.cmd == "world":
        starts = {"ranker": 0, "sft": 100_000, "pool": 200_000}
        for name, start in starts.items():
            mw.write_split(f"{args.out}/{name}", getattr(args, name), args.seed, start)
            print(f"{args.out}/{name}")
        heldout = f"{args.out}/heldout"
        mw.write_amber_split(heldout, args.val + args.test, args.seed, 300_000,
                             splits={"val": args.val, "test": args.test})  # fmt: skip
        print(heldout)
        print(mw.write_prompts(f"{args.out}/prompts.txt"))
    elif args.cmd == "ranker":
        from clipdpo_mini.ranker import train_ranker, write_ranker

        if args.random:
            print(write_ranker(args.out, seed=args.seed))
        else:
            print(train_ranker(mw.read_manifest(args.split), args.out, steps=args.steps, seed=args.seed))
    elif args.cmd == "captioner":
        from clipdpo_mini.captioner import train_captioner

        ranker = None if args.ranker == "none" else args.ranker
        manifest = mw.read_manifest(args.split)
        print(train_captioner(manifest, ranker, args.out, seed=args.seed, steps=args.steps,
                              bias=args.bias))  # fmt: skip
    elif args.cmd == "agreement":
        from clipdpo_mini.repro import _read_jsonl
        from clipdpo_mini.truth import pair_agreement

        scenes = mw.scenes_by_image(mw.read_manifest(args.split))
        print(json.dumps(pair_agreement(_read_jsonl(args.pairs), scenes)))
    elif args.cmd == "swap":
        from clipdpo_mini.repro import _read_jsonl, swap_pairs

        for pair in swap_pairs(_read_jsonl(args.pairs), args.seed):
            sys.stdout.write(json.dumps(pair) + "\n")
    elif args.cmd in ("repro", "rankers"):
        from clipdpo_mini.repro import ReproSettings, measure_rankers, run

        settings = ReproSettings(args.out, seeds=tuple(args.seeds), jobs=args.jobs)
        for item in args.set:
            key, _, value = item.partition("=")
            current = getattr(settings, key)  # an unknown field is an AttributeError
            if key == "candidates":  # names of the candidate recipes, comma-separated
                by_name = {r.name: r for r in current}
                setattr(settings, key, tuple(by_name[name] for name in value.split(",")))
            elif key == "controls":  # names of the control arms (repro.CONTROLS), comma-separated
                from clipdpo_mini.repro import CONTROLS

                names = tuple(n for n in value.split(",") if n)
                unknown = [n for n in names if n not in CONTROLS]
                if unknown:
                    p.error(f"--set controls: unknown {', '.join(unknown)} (known: {', '.join(CONTROLS)})")
                setattr(settings, key, names)
            elif key == "round_controls":  # controls also run for rounds 2..rounds (repro.ROUND_CONTROLS)
                from clipdpo_mini.repro import ROUND_CONTROLS

                names = tuple(n for n in value.split(",") if n)
                unknown = [n for n in names if n not in ROUND_CONTROLS]
                if unknown:
                    p.error(f"--set round_controls: {', '.join(unknown)} cannot run rounds "
                            f"(can: {', '.join(ROUND_CONTROLS)})")  # fmt: skip
                setattr(settings, key, names)
            elif key in ("ranker_options", "train_ranker_options"):  # repro.RANKER_OPTIONS, comma-separated
                from clipdpo_mini.repro import option_names

                try:
                    option_names(value)
                except ValueError as exc:
                    p.error(f"--set {key}: {exc}")
                setattr(settings, key, value)
            elif key == "sources":  # POVID's pair-source arms (repro.SOURCES), comma-separated
                from clipdpo_mini.repro import SOURCES

                names = tuple(n for n in value.split(",") if n)
                unknown = [n for n in names if n not in SOURCES]
                if unknown:
                    p.error(f"--set sources: unknown {', '.join(unknown)} (known: {', '.join(SOURCES)})")
                setattr(settings, key, names)
            else:
                setattr(settings, key, type(current)(value))
        untrained = [n for n in settings.round_controls if n not in settings.controls]
        if untrained:  # a control's round 2 starts from its round-1 model
            p.error(f"--set round_controls: {', '.join(untrained)} must be among controls= too")
        (run if args.cmd == "repro" else measure_rankers)(settings)
    elif args.cmd == "demo-models":
        from clipdpo_mini.demo import build_demo_models

        print(json.dumps(build_demo_models(args.out), indent=1))
    elif args.cmd == "demo-data":
        from clipdpo_mini.demo import main_data

        main_data(args.out)
    elif args.cmd == "compare":
        from clipdpo_mini.demo import main_compare

        main_compare(args.before, args.after, args.before_responses, args.after_responses)


if __name__ == "__main__":
    main()
