"""``mugpos rules``: add, list, remove, explain and test rules (an extension loaded by ``mugpos.cli.main``).

Rules are written to the compacted rules topic, which every worker follows, so ``add`` and ``rm``
take effect on running workers within a poll interval. Every rule is validated here first, the
same way workers validate it, so nothing invalid is ever stored. Exit codes follow the main CLI:
0 success, 1 partial (``rm`` of an unknown id), 2 bad input or services down.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

EXIT_PARTIAL, EXIT_FATAL = 1, 2
MAX_EVENT_FILE_BYTES = 16 * 1024 * 1024

err = Console(stderr=True)


def _fail(message: str, code: int = EXIT_FATAL) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def _fail_plain(message: str, code: int = EXIT_FATAL) -> NoReturn:
    """Multi-line messages (syntax errors with a caret) must keep their spacing: no markup, no wrapping."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _settings() -> Any:
    from mugpos.core.settings import SettingsError, get_settings

    try:
        return get_settings()
    except SettingsError as exc:
        _fail(str(exc))


def _config() -> Any:
    from mugpos.rules.config import load_config
    from mugpos.rules.errors import RuleError

    try:
        return load_config()
    except RuleError as exc:
        _fail(str(exc))


def _read_text(path: Path, what: str, limit: int) -> str:
    try:
        data = sys.stdin.buffer.read(limit + 1) if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        _fail(f"{path}: cannot read {what} ({exc.strerror or exc})")
    if len(data) > limit:
        _fail(f"{path}: {what} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{path}: {what} is not UTF-8 text")


def _build_rule(
    text: str | None,
    file: Path | None,
    *,
    allowlist: tuple[str, ...] | None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A validated rule from a sentence or a JSON file; exits 2 with the parser's message otherwise."""
    from mugpos.rules.errors import RuleSyntaxError, RuleValidationError
    from mugpos.rules.manage import rule_from_sentence
    from mugpos.rules.model import MAX_JSON_BYTES, rule_from_json

    if (text is None) == (file is None):
        _fail('give either a sentence ("alert when a mug is not on a coaster") or --file rule.json')
    try:
        if file is not None:
            return rule_from_json(_read_text(file, "rule JSON", MAX_JSON_BYTES), allowlist=allowlist)
        return rule_from_sentence(text or "", overrides, allowlist=allowlist)
    except RuleSyntaxError as exc:
        _fail_plain(str(exc))
    except RuleValidationError as exc:
        _fail(f"invalid rule: {exc}")


def _check_publish_target(rule: Any, settings: Any, allowlist: tuple[str, ...]) -> None:
    from mugpos.rules.errors import RuleValidationError
    from mugpos.rules.manage import check_publish_target

    try:
        check_publish_target(rule, settings, allowlist)
    except RuleValidationError as exc:
        _fail(f"invalid rule: {exc}")


def _run(coro: Any) -> Any:
    from mugpos.core.errors import MugposError

    try:
        return asyncio.run(coro)
    except MugposError as exc:
        _fail(str(exc))


def register(cli: typer.Typer) -> None:
    """Add the ``rules`` command group to the main CLI."""
    rules_cli = typer.Typer(
        help="Add, list, remove, explain and test rules (grammar: rules/GRAMMAR.md).", no_args_is_help=True
    )
    cli.add_typer(rules_cli, name="rules")

    @rules_cli.command("add")
    def add(
        text: Annotated[
            str | None, typer.Argument(help='A sentence, e.g. "alert when a mug is not on a coaster".')
        ] = None,
        file: Annotated[Path | None, typer.Option("--file", "-f", help="A rule as JSON ('-' reads stdin).")] = None,
        rule_id: Annotated[str | None, typer.Option("--id", help="Rule id (default: derived from the rule).")] = None,
        name: Annotated[str | None, typer.Option(help="Short name (default: the sentence).")] = None,
        severity: Annotated[
            str | None, typer.Option(help="info, warning or critical (default: from the sentence).")
        ] = None,
        action: Annotated[str | None, typer.Option(help="publish, webhook or log.")] = None,
        target: Annotated[str | None, typer.Option(help="Webhook URL or topic of the action.")] = None,
        source: Annotated[list[str], typer.Option("--source", "-s", help="Limit to a source (repeatable).")] = [],  # noqa: B006
        cooldown: Annotated[int | None, typer.Option(min=0, help="Seconds between actions per source.")] = None,
        disabled: Annotated[bool, typer.Option("--disabled", help="Store the rule disabled.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print; store nothing.")] = False,
    ) -> None:
        """Compile and store a rule; prints its JSON (stdout) and id (stderr)."""
        from mugpos.rules.model import rule_to_json
        from mugpos.storage.rules import RuleStore

        config = _config()
        overrides: dict[str, Any] = {
            "rule_id": rule_id,
            "name": name,
            "severity": severity,
            "action": action,
            "target": target,
            "sources": source,
            "cooldown_s": cooldown,
            "enabled": not disabled,
        }
        if file is not None and any(v not in (None, [], True) for v in overrides.values()):
            _fail(
                "--id, --name, --severity, --action, --target, --source, --cooldown and --disabled apply to sentences; "
                "put them in the JSON file"
            )
        if severity is not None and severity not in ("info", "warning", "critical"):
            _fail(f"--severity must be info, warning or critical, got {severity!r}")
        if action is not None and action not in ("publish", "webhook", "log"):
            _fail(f"--action must be publish, webhook or log, got {action!r}")
        rule = _build_rule(text, file, allowlist=config.webhook_allowlist, overrides=overrides)
        settings = _settings()
        _check_publish_target(rule, settings, config.publish_allowlist)
        if rule.action.type == "webhook" and not config.webhook_secret:
            err.print("[yellow]warning:[/] MUGPOS_WEBHOOK_SECRET is not set here; workers refuse unsigned webhooks")
        if not dry_run:
            _run(RuleStore(settings).put(rule))  # stored before anything is printed: output means stored
        print(json.dumps(rule_to_json(rule), indent=2, ensure_ascii=False))
        if dry_run:
            err.print(f"rule {rule.rule_id} is valid (not stored: --dry-run)", highlight=False)
        else:
            err.print(f"added rule {rule.rule_id} to {settings.topic('rules')}", highlight=False)

    @rules_cli.command("list")
    def list_rules(
        as_json: Annotated[bool, typer.Option("--json", help="One JSON rule per line.")] = False,
    ) -> None:
        """Read the rules topic from the beginning and show the current rules."""
        from mugpos.rules.model import describe, describe_temporal, rule_to_json
        from mugpos.storage.rules import RuleStore

        settings = _settings()
        registry = _run(RuleStore(settings).read())
        for rule_id, problem in sorted(registry.invalid.items()):
            err.print(f"[yellow]invalid record[/] {rule_id}: {problem}", highlight=False, soft_wrap=True)
        rules = sorted(registry.rules.values(), key=lambda r: r.rule_id)
        if as_json:
            for rule in rules:
                sys.stdout.write(json.dumps(rule_to_json(rule), ensure_ascii=False) + "\n")
            return
        table = Table(title=f"{len(rules)} rule(s) on {settings.topic('rules')}")
        for column in ("id", "on", "severity", "scope", "action", "cooldown", "condition", "over time"):
            table.add_column(column, overflow="fold")
        for rule in rules:
            action = rule.action.type + (f" {rule.action.target}" if rule.action.target else "")
            table.add_row(
                rule.rule_id,
                "yes" if rule.enabled else "no",
                rule.severity,
                ", ".join(rule.sources) or "all",
                action,
                f"{rule.cooldown_s} s",
                describe(rule.condition),
                describe_temporal(rule.temporal) or "-",  # "-": a rule about single images
            )
        Console().print(table)

    @rules_cli.command("rm")
    def remove(
        rule_id: Annotated[str, typer.Argument(help="Id of the rule to delete.")],
        force: Annotated[bool, typer.Option("--force", help="Write the tombstone even if the id is unknown.")] = False,
    ) -> None:
        """Delete a rule (a tombstone on the compacted rules topic)."""
        from mugpos.rules.model import RULE_ID
        from mugpos.storage.rules import RuleStore

        if not RULE_ID.fullmatch(rule_id):
            _fail(f"{rule_id!r} is not a rule id")
        settings = _settings()
        store = RuleStore(settings)
        if not force:
            registry = _run(store.read())
            if rule_id not in registry.rules and rule_id not in registry.invalid:
                _fail(f"no rule {rule_id!r} on {settings.topic('rules')} (see `mugpos rules list`)", EXIT_PARTIAL)
        _run(store.delete(rule_id))
        err.print(f"removed rule {rule_id}", highlight=False)

    @rules_cli.command("explain")
    def explain(
        text: Annotated[str, typer.Argument(help='A sentence, e.g. "warn if the mug count exceeds 4".')],
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object: sentence, condition, rule.")] = False,
    ) -> None:
        """Show how a sentence is understood, without storing it or reaching any service.

        Prints the rule said back in the grammar's own words, its condition, its temporal clause (a
        rule over time only) and its JSON; a sentence the grammar cannot read exits 2 with the error
        (position, caret, what would fit).
        """
        from mugpos.rules.errors import RuleSyntaxError, RuleValidationError
        from mugpos.rules.language import canonical_sentence, compile_sentence
        from mugpos.rules.model import describe, describe_temporal, rule_to_json

        try:
            rule = compile_sentence(text)
        except RuleSyntaxError as exc:
            _fail_plain(str(exc))
        except RuleValidationError as exc:
            _fail(f"invalid rule: {exc}")
        record = rule_to_json(rule)
        del record["updated_at"]  # the time of this run, not part of what was understood
        sentence = canonical_sentence(rule)
        condition = describe(rule.condition)
        temporal = describe_temporal(rule.temporal) or None  # None: a rule about single images
        if as_json:
            out = {"sentence": sentence, "condition": condition, "temporal": temporal, "rule": record}
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            return
        sys.stdout.write(f"understood: {sentence or '(no sentence form)'}\n")
        sys.stdout.write(f"condition:  {condition}\n")
        if temporal is not None:  # only for rules over time, so the output of other rules reads as before
            sys.stdout.write(f"over time:  {temporal}\n")
        sys.stdout.write(json.dumps(record, indent=2, ensure_ascii=False) + "\n")

    @rules_cli.command("test")
    def test(
        text: Annotated[str | None, typer.Argument(help="A sentence to test.")] = None,
        event: Annotated[
            Path, typer.Option("--event", "-e", help="PositionEvent JSON: an object, a list, or JSON lines.")
        ] = Path("-"),
        file: Annotated[
            Path | None, typer.Option("--file", "-f", help="Test a JSON rule instead of a sentence.")
        ] = None,
    ) -> None:
        """Evaluate a rule offline against position events; prints one JSON result per event."""
        from mugpos.rules.manage import try_rule

        config = _config()
        rule = _build_rule(text, file, allowlist=config.webhook_allowlist)
        events = _load_events(_read_text(event, "event JSON", MAX_EVENT_FILE_BYTES), event)
        results = try_rule(rule, events)
        for result in results:
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        fired = sum(1 for r in results if r["fires"])
        how = "episodes stepped in the order given" if rule.temporal is not None else "cooldown not applied"
        err.print(f"rule {rule.rule_id} fires on {fired} of {len(events)} event(s) ({how})", highlight=False)


def _load_events(text: str, path: Path) -> list[Any]:
    """Position events from JSON: one object, a list of objects, or one object per line."""
    from mugpos.rules.errors import RuleError
    from mugpos.rules.manage import parse_events

    try:
        return parse_events(text)
    except RuleError as exc:
        _fail(f"{path}: {exc}")
