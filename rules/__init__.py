"""User rules: a sentence grammar and a JSON form that compile to one validated structure, a fast
evaluator over ``PositionEvent`` records, and action delivery (see ``rules/GRAMMAR.md``).

    from mugpos.rules import compile_sentence, RuleSet
    rule = compile_sentence("warn if any mug is within 5 cm of the table edge")
    for match in RuleSet([rule]).evaluate(position_event).matches:
        print(match.rule.rule_id, match.mug_index, match.evidence)

Evaluation with cooldowns lives in ``rules.processor``, action building in ``rules.actions`` and
delivery (log, webhook) in ``rules.senders``; the rules topic (registry, feed) is a storage adapter,
``mugpos.storage.rules``. Nothing here imports Faust, aiohttp views or the CLI.
"""

from __future__ import annotations

from mugpos.rules.engine import Evaluation, Match, RuleSet, Skip
from mugpos.rules.errors import RuleError, RuleSyntaxError, RuleValidationError
from mugpos.rules.examples import EXAMPLES
from mugpos.rules.language import ParsedSentence, compile_sentence, parse_sentence
from mugpos.rules.model import (
    Action,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Not,
    Rule,
    describe,
    rule_from_json,
    rule_from_obj,
    rule_from_record,
    rule_to_json,
    rule_to_record,
)

__all__ = [
    "EXAMPLES",
    "Action",
    "AllOf",
    "AnyOf",
    "Compare",
    "Condition",
    "Evaluation",
    "Match",
    "Not",
    "ParsedSentence",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleSyntaxError",
    "RuleValidationError",
    "Skip",
    "compile_sentence",
    "describe",
    "parse_sentence",
    "rule_from_json",
    "rule_from_obj",
    "rule_from_record",
    "rule_to_json",
    "rule_to_record",
]
