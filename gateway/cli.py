"""``voicebot``: run the gateway, check a config, prepare the bundled models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    w = sub.add_parser(
        "workers", help="run N gateway processes on consecutive ports (4 calls each), "
                        "restart crashed ones, stop all on SIGTERM/SIGINT")
    w.add_argument("-n", "--workers", type=int, default=2, metavar="N",
                   help="number of worker processes (default 2)")
    w.add_argument("--base-port", type=int, default=None, metavar="P",
                   help="SIP/UDP port of worker 0; worker i listens on P+i (default 5062, "
                        "as edge/run.sh expects)")
    w.add_argument("--config", dest="workers_config", metavar="FILE",
                   help="TOML config shared by the workers (same as the global --config)")
    e = sub.add_parser("llm-server", help="run the LLM engine (llama-server, the config's "
                                          "[llm] model) alone, e.g. on a model box for "
                                          "gateways with [llm] backend = \"openai\"")
    e.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    e.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    e.add_argument("--slots", type=int, default=0, metavar="N",
                   help="conversations decoded together (default [llm] engine_slots, or "
                        "[sip] max_calls + 1)")
    m = sub.add_parser("models", help="assemble and verify the bundled models (sha256)")
    m.add_argument("--quiet", action="store_true")
    c = sub.add_parser("calls", help="list recent calls from the call journal; "
                                     "'calls show ID' shows one call's turns and timings, "
                                     "'calls serve' a web page of them")
    c.add_argument("--journal", metavar="FILE",
                   help="journal file (default: [records] path of the config)")
    c.add_argument("-n", "--limit", type=int, default=20, metavar="N",
                   help="how many recent calls to list (default 20; 0 = all)")
    c.add_argument("--json", action="store_true", help="print records as JSON")
    cs = c.add_subparsers(dest="calls_command", metavar="{show,serve}")
    show = cs.add_parser("show", help="one call: its turns with their timings")
    show.add_argument("id", help="record id (or a unique prefix, or a log name like call-3: "
                                 "its latest record)")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
    show.add_argument("--html", metavar="FILE",
                      help="write the call as a self-contained HTML timeline page")
    show.add_argument("--audio-dir", metavar="DIR",
                      help="with --html: draw the caller's turn WAVs kept in DIR "
                           "([log] turn_audio_dir)")
    serve = cs.add_parser("serve", help="a web page of recent calls, each linked to its "
                                        "timeline, and the inbox of messages at /messages "
                                        "(loopback by default)")
    serve.add_argument("--port", type=int, default=None, metavar="N",
                       help="TCP port (default 9480; 0 = any free one)")
    serve.add_argument("--address", "--host", default="127.0.0.1", metavar="ADDR",
                       help="listen address (default 127.0.0.1: the pages show callers' numbers "
                            "and words; any other needs an access token in "
                            "$VOICEBOT_INBOX_TOKEN)")
    serve.add_argument("--audio-dir", metavar="DIR",
                       help="draw the caller's turn WAVs kept in DIR (default: [log] "
                            "turn_audio_dir)")
    ms = sub.add_parser("messages", help="the messages callers left, newest first (* unread); "
                                         "'messages show ID' one in full, 'messages read ID' / "
                                         "'unread ID' mark one")
    ms.add_argument("--journal", metavar="FILE",
                    help="call journal whose messages to read (default: [records] path of the "
                         "config); they are in messages.jsonl beside it")
    ms.add_argument("--unread", action="store_true", help="only the unread ones")
    ms.add_argument("--json", action="store_true", help="print the messages as JSON lines")
    mcs = ms.add_subparsers(dest="messages_command", metavar="{show,read,unread}")
    mshow = mcs.add_parser("show", help="one message in full: its text, audio file and call")
    mshow.add_argument("id", help="message id (or a unique prefix)")
    mshow.add_argument("--json", action="store_true", help="print the message as JSON")
    for verb in ("read", "unread"):
        mark = mcs.add_parser(verb, help=f"mark a message {verb}")
        mark.add_argument("id", help="message id (or a unique prefix)")
    return p


def _find_message(messages: list[dict], key: str) -> dict:
    """A message by id or unique id prefix."""
    from gateway.calls.records import clean_text

    hits = [m for m in messages if m.get("id") == key] or [
        m for m in messages if key and str(m.get("id", "")).startswith(key)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise LookupError(f"no message {clean_text(key)!r}")
    raise LookupError(f"{clean_text(key)!r} matches {len(hits)} messages: "
                      + ", ".join(clean_text(m.get("id")) for m in hits[:10]))


def _messages(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    import json

    from gateway.calls import records
    from gateway.inbox import view
    from gateway.inbox.store import MessageStore, messages_path, read_messages

    path = messages_path(records.journal_path(args.journal or cfg.records.path))
    messages = read_messages(path)
    if args.messages_command is None:
        shown = [m for m in messages if not m.get("read")] if args.unread else messages
        if args.json:
            for m in shown:
                print(json.dumps(records.jsonable(m), ensure_ascii=False))
        elif shown:
            print(view.format_list(shown))
        else:
            print(f"voicebot: no {'unread ' if args.unread else ''}messages in {path}",
                  file=sys.stderr)
        return 0
    try:
        m = _find_message(messages, args.id)
    except LookupError as e:
        print(f"voicebot: {e.args[0]} in {path}", file=sys.stderr)
        return 1
    store = MessageStore(path)
    if args.messages_command == "show":
        if args.json:
            print(json.dumps(records.jsonable(m), ensure_ascii=False))
        else:
            print(view.format_message(m, store.audio_path(m)))
        return 0
    read = args.messages_command == "read"
    try:
        store.mark(m["id"], read)
    except OSError as e:
        print(f"voicebot: cannot mark {records.clean_text(m['id'])}: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"voicebot: {records.clean_text(m['id'])} marked {'read' if read else 'unread'}",
          file=sys.stderr)
    return 0


def _calls(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    import json

    from gateway.calls import records
    from gateway.views import records_view

    path = records.journal_path(args.journal or cfg.records.path)
    if args.calls_command == "serve":
        return _serve(path, args, cfg.log.turn_audio_dir)
    if not path.exists():
        print(f"voicebot: no call journal at {path}", file=sys.stderr)
        return 1
    folded = records.read(path)
    for line_no, text in folded.torn:
        print(f"voicebot: {path} line {line_no} is torn or not a record, skipped: {text!r}",
              file=sys.stderr)
    if args.calls_command == "show":
        try:
            rec = records_view.find(folded, args.id)
        except LookupError as e:
            print(f"voicebot: {e.args[0]}", file=sys.stderr)
            return 1
        if args.html:
            return _write_html(rec, args.html, args.audio_dir, path)
        if args.audio_dir:
            print("voicebot: --audio-dir goes with --html", file=sys.stderr)
            return 2
        print(json.dumps(rec, indent=2, ensure_ascii=False) if args.json
              else records_view.format_call(rec))
        return 0
    recs = folded.records()
    recs = recs[-args.limit:] if args.limit > 0 else recs
    if args.json:
        print(json.dumps(recs, indent=2, ensure_ascii=False))
    else:
        print(records_view.format_list(recs))
    return 0


def _serve(journal: Path, args: argparse.Namespace, turn_audio_dir: str) -> int:
    import os
    import signal
    import threading

    from gateway.views import calls_web

    port = calls_web.DEFAULT_PORT if args.port is None else args.port
    try:
        srv = calls_web.server(journal, args.address, port, args.audio_dir or turn_audio_dir
                               or None, args.limit, os.environ.get(calls_web.TOKEN_ENV) or None)
    except calls_web.AccessError as e:
        print(f"voicebot: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"voicebot: cannot listen on {args.address}:{port}: {e.strerror}", file=sys.stderr)
        return 1
    host, bound = srv.server_address[:2]
    host = f"[{host}]" if ":" in str(host) else host
    print(f"voicebot: recent calls of {journal} on http://{host}:{bound}/ (messages at "
          "/messages; Ctrl-C stops)", file=sys.stderr, flush=True)

    def stop(*_: object) -> None:
        # not an exception: wsgiref swallows one raised while it finishes a request. shutdown()
        # waits for serve_forever() to return, so it runs on another thread
        threading.Thread(target=srv.shutdown, daemon=True).start()

    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, or a service manager's stop
        signal.signal(sig, stop)
    try:
        srv.serve_forever()
    finally:
        srv.server_close()
    return 0


def _write_html(rec: dict, out: str, audio_dir: str | None, journal: Path) -> int:
    from gateway.calls.recording import recording_file
    from gateway.views import records_view, timeline

    waves = timeline.turn_waveforms(rec, audio_dir) if audio_dir else {}
    wav = recording_file(journal, rec)
    page = timeline.render(rec, waves, state=records_view.state_of(rec),
                           recording=wav.as_uri() if wav is not None else None)
    try:
        Path(out).write_text(page, encoding="utf-8")
    except OSError as e:
        print(f"voicebot: cannot write {out}: {e}", file=sys.stderr)
        return 1
    waved = f", {len(waves)} turn waveform(s) from {audio_dir}" if audio_dir else ""
    print(f"voicebot: wrote {out} ({len(rec.get('turns') or [])} turns{waved})",
          file=sys.stderr)
    return 0


def _llm_server(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    """The engine the gateway would start, in the foreground until SIGTERM/SIGINT."""
    import dataclasses
    import signal
    import threading

    from gateway.app import setup_logging, start_engine
    from pipeline import models

    setup_logging(cfg.log.level)
    llm = dataclasses.replace(cfg.llm, engine_slots=args.slots or cfg.llm.engine_slots)
    cfg = dataclasses.replace(cfg, llm=llm)
    try:
        model = models.resolve("", cfg.llm.model, cfg.llm.model_sha256, "", cfg.llm.bundled,
                               embedded_llm=True).llm
        assert model is not None
        engine = start_engine(cfg, model, host=args.host, port=args.port)
    except (models.ModelError, FileNotFoundError, RuntimeError) as e:
        print(f"voicebot: llm-server: {e}", file=sys.stderr)
        return 3
    print(f"voicebot llm-server ready: {engine.base_url}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    engine.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "workers_config", None):
        args.config = args.workers_config
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as e:
        print(f"voicebot: config error: {e}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        import json

        print(json.dumps(config_mod.documented_defaults(cfg, show_secrets=False), indent=2))
        return 0
    if args.command == "calls":
        return _calls(args, cfg)
    if args.command == "messages":
        return _messages(args, cfg)
    if args.command == "workers":
        from gateway import workers

        base = workers.DEFAULT_BASE_PORT if args.base_port is None else args.base_port
        return workers.main(cfg, args.workers, base, args.config)
    if args.command == "llm-server":
        return _llm_server(args, cfg)
    if args.command == "models":
        from pipeline import models

        try:
            for name in models.BUNDLED_LLMS:
                models.assemble_llm(name, progress=not args.quiet)
            # [stt] model names a Whisper folder only for the whisper backend (a Vosk folder
            # is checked by its own backend: gateway/config.py)
            whisper = cfg.stt.model if cfg.stt.backend == "whisper" else ""
            paths = models.resolve(whisper, cfg.llm.model, cfg.llm.model_sha256, cfg.tts.voice,
                                   cfg.llm.bundled)
            embedder = models.minilm_dir()
        except models.ModelError as e:
            print(f"voicebot: model error: {e}", file=sys.stderr)
            return 3
        for k, v in vars(paths).items():
            print(f"{k}: {v}")
        print(f"sentence embeddings: {embedder}")
        return 0
    from gateway.app import serve, setup_logging
    from pipeline.models import ModelError

    setup_logging(cfg.log.level)
    try:
        code = serve(cfg)
    except ModelError as e:
        print(f"voicebot: model error: {e}", file=sys.stderr)
        return 3
    # pjsua2 objects still referenced (pooled media ports) must not be destroyed after the
    # library is: leave without running destructors (records and logs are already flushed)
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
