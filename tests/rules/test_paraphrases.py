"""Natural phrasings: each paraphrase compiles to one exact rule, and nonsense is refused with a position.

The corpus is the grammar's promise to users: many ways to say a condition the engine supports,
each with exactly one meaning. The refusals are the other half of that promise: a vague, ambiguous
or unsupported sentence is an error that points at the word, never a guess.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mugpos.core.codec import codec
from mugpos.rules import language
from mugpos.rules.engine import RuleSet
from mugpos.rules.errors import RuleSyntaxError
from mugpos.rules.examples import EXAMPLES
from mugpos.rules.language import canonical_sentence, compile_sentence
from mugpos.rules.model import AllOf, AnyOf, Condition, rule_from_json, rule_to_json, rule_to_record
from tests.rules.conftest import mug, position

GRAMMAR = Path(__file__).resolve().parents[2] / "rules" / "GRAMMAR.md"

Json = dict[str, Any]


def cmp(field: str, op: str, value: Any) -> Json:
    return {"kind": "compare", "field": field, "op": op, "value": value}


def all_(*children: Json) -> Json:
    return {"kind": "all", "children": list(children)}


def any_(*children: Json) -> Json:
    return {"kind": "any", "children": list(children)}


MUGS, COASTERS, TABLES = "image.mug_count", "image.coaster_count", "image.surface_count"
EDGE_CM, EDGE_PX, EDGE_FRAC = "mug.edge_distance_cm", "mug.edge_distance_px", "mug.edge_distance_frac"
NEAR_CM, NEAR_PX = "mug.nearest_mug_cm", "mug.nearest_mug_px"
OFFSET_CM, OFFSET_PX, OFFSET_FRAC = "mug.coaster_offset_cm", "mug.coaster_offset_px", "mug.coaster_offset_frac"
ON, QUALITY, CONFIDENCE = "mug.on_coaster", "mug.quality", "mug.confidence"
COLOUR, VERDICT = "mug.attributes.colour", "image.verdict"

OFF = cmp(ON, "==", False)
OFF_NEAR_EDGE = all_(OFF, cmp(EDGE_CM, "<=", 5))
NOT_OK = cmp(VERDICT, "in", ["warning", "violation"])

# (sentence, the condition it compiles to, the severity it sets; None: it sets none, the default applies)
PARAPHRASES: list[tuple[str, Json, str | None]] = [
    # -- counts: more than four mugs ------------------------------------------------------------
    ("warn if the mug count exceeds 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the number of mugs exceeds 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the number of mugs is more than 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the number of mugs is greater than four", cmp(MUGS, ">", 4), "warning"),
    ("warn if the mug count is above 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the mug count is over 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the mug count is higher than 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the mug count is bigger than 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the mug count is larger than 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if mug count > 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if there are more than 4 mugs", cmp(MUGS, ">", 4), "warning"),
    ("warn if there are over 4 mugs", cmp(MUGS, ">", 4), "warning"),
    ("warn if more than four mugs are on the table", cmp(MUGS, ">", 4), "warning"),
    ("warn if more than 4 cups are visible", cmp(MUGS, ">", 4), "warning"),
    ("warn when the cup count exceeds 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the count of mugs exceeds 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the number of mugs on the table exceeds 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the number of mugs in view is above 4", cmp(MUGS, ">", 4), "warning"),
    ("warn when above 4 mugs are in the picture", cmp(MUGS, ">", 4), "warning"),
    ("warn if the mug count is not at most 4", cmp(MUGS, ">", 4), "warning"),
    ("warn if the mug count isn't 4 or fewer", cmp(MUGS, ">", 4), "warning"),
    ("alert when more than 2 mugs on the table", cmp(MUGS, ">", 2), "warning"),
    ("alert when more than two mugs are on the desk", cmp(MUGS, ">", 2), "warning"),
    ("when there are more than 2 mugs in the frame", cmp(MUGS, ">", 2), None),
    # -- counts: at most / at least ---------------------------------------------------------------
    ("warn if the mug count does not exceed 4", cmp(MUGS, "<=", 4), "warning"),
    ("warn if the mug count doesn't exceed 4", cmp(MUGS, "<=", 4), "warning"),
    ("alert when the mug count is at least 5", cmp(MUGS, ">=", 5), "warning"),
    ("alert when at least five mugs are in view", cmp(MUGS, ">=", 5), "warning"),
    ("alert when 5 or more mugs are on the table", cmp(MUGS, ">=", 5), "warning"),
    ("alert when the mug count is 5 or more", cmp(MUGS, ">=", 5), "warning"),
    ("alert when the mug count is greater than or equal to 5", cmp(MUGS, ">=", 5), "warning"),
    ("alert when the mug count >= 5", cmp(MUGS, ">=", 5), "warning"),
    ("alert when the mug count ≥ 5", cmp(MUGS, ">=", 5), "warning"),
    ("alert when the mug count is no less than 5", cmp(MUGS, ">=", 5), "warning"),
    ("alert when no fewer than 5 mugs are visible", cmp(MUGS, ">=", 5), "warning"),
    ("alert when there are five mugs or more", cmp(MUGS, ">=", 5), "warning"),
    ("alert when at most 1 table is detected", cmp(TABLES, "<=", 1), "warning"),
    ("alert when no more than one table is found", cmp(TABLES, "<=", 1), "warning"),
    ("alert when the table count is at most 1", cmp(TABLES, "<=", 1), "warning"),
    ("alert when the number of tables doesn't exceed 1", cmp(TABLES, "<=", 1), "warning"),
    ("alert when up to 1 table is visible", cmp(TABLES, "<=", 1), "warning"),
    ("alert when the table count is 1 or less", cmp(TABLES, "<=", 1), "warning"),
    ("alert when the number of desks is one or fewer", cmp(TABLES, "<=", 1), "warning"),
    ("alert when 1 or fewer tables are in view", cmp(TABLES, "<=", 1), "warning"),
    ("alert when not more than 1 table is seen", cmp(TABLES, "<=", 1), "warning"),
    ("alert when the surface count is less than or equal to 1", cmp(TABLES, "<=", 1), "warning"),
    # -- counts: fewer than two coasters ----------------------------------------------------------
    ("notify me when fewer than 2 coasters", cmp(COASTERS, "<", 2), "info"),
    ("notify me when there are fewer than two coasters", cmp(COASTERS, "<", 2), "info"),
    ("notify me when less than 2 coasters are visible", cmp(COASTERS, "<", 2), "info"),
    ("notify me when under 2 coasters are detected", cmp(COASTERS, "<", 2), "info"),
    ("notify me when the coaster count is below 2", cmp(COASTERS, "<", 2), "info"),
    ("notify me when the coaster count is less than 2", cmp(COASTERS, "<", 2), "info"),
    ("notify me when the coaster count is under two", cmp(COASTERS, "<", 2), "info"),
    ("notify me when the number of coasters is lower than 2", cmp(COASTERS, "<", 2), "info"),
    ("notify me when the number of coasters is smaller than 2", cmp(COASTERS, "<", 2), "info"),
    ("notify me when coaster count < 2", cmp(COASTERS, "<", 2), "info"),
    ("notify me if there are under 2 coasters on the table", cmp(COASTERS, "<", 2), "info"),
    ("notify me if the coaster count is not at least 2", cmp(COASTERS, "<", 2), "info"),
    # -- counts: none -----------------------------------------------------------------------------
    ("alert when there are no coasters", cmp(COASTERS, "==", 0), "warning"),
    ("alert when there is no coaster", cmp(COASTERS, "==", 0), "warning"),
    ("alert when there aren't any coasters", cmp(COASTERS, "==", 0), "warning"),
    ("alert when there are not any coasters", cmp(COASTERS, "==", 0), "warning"),
    ("alert when there isn't a coaster", cmp(COASTERS, "==", 0), "warning"),
    ("alert when no coasters are visible", cmp(COASTERS, "==", 0), "warning"),
    ("alert when the coaster count is zero", cmp(COASTERS, "==", 0), "warning"),
    ("alert when the coaster count is 0", cmp(COASTERS, "==", 0), "warning"),
    ("alert when the number of coasters is 0", cmp(COASTERS, "==", 0), "warning"),
    ("alert when the coaster count equals 0", cmp(COASTERS, "==", 0), "warning"),
    ("alert when zero coasters are detected", cmp(COASTERS, "==", 0), "warning"),
    ("alert when the coaster count is equal to zero", cmp(COASTERS, "==", 0), "warning"),
    ("alert when there are exactly 0 coasters", cmp(COASTERS, "==", 0), "warning"),
    ("alert when there are no mugs on the table", cmp(MUGS, "==", 0), "warning"),
    # -- counts: exactly --------------------------------------------------------------------------
    ("alert when exactly 2 mugs are on the table", cmp(MUGS, "==", 2), "warning"),
    ("alert when the mug count is 2", cmp(MUGS, "==", 2), "warning"),
    ("alert when the mug count is exactly two", cmp(MUGS, "==", 2), "warning"),
    ("alert when the number of mugs equals 2", cmp(MUGS, "==", 2), "warning"),
    ("alert when there are exactly two mugs", cmp(MUGS, "==", 2), "warning"),
    ("alert when the mug count is not 2", cmp(MUGS, "!=", 2), "warning"),
    ("alert when the mug count isn't two", cmp(MUGS, "!=", 2), "warning"),
    ("alert when the mug count is twenty", cmp(MUGS, "==", 20), "warning"),
    ("alert when there are more than seventeen mugs", cmp(MUGS, ">", 17), "warning"),
    # -- two mugs close together (the nearest-mug gap) --------------------------------------------
    ("critical when two mugs are closer than 1.5 cm", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when two mugs closer than 1.5 cm", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when two mugs are closer than 1.5 cm to each other", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when two mugs are closer than 15 mm to one another", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when two mugs are less than 1.5 cm apart", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when any two mugs are less than 1.5 centimetres apart", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when two cups are nearer than 1.5 cm", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when there are two mugs closer than 1.5 cm", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when 2 mugs are under 1.5 cm apart", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when two mugs stand closer than 15 millimetres", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is closer than 1.5 cm to another mug", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is less than 1.5 cm from the nearest mug", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is nearer than 1.5 cm to its nearest neighbour", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is closer than 1.5 centimeters to its neighbor", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is less than 1.5 cm away from any other mug", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is under 1.5 cm from another cup", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical if a mug's distance to the nearest mug is below 1.5 cm", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical if a mug's gap to another mug is less than 1.5 cm", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is < 1.5 cm from another mug", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("critical when a mug is closer than 1.5 cm to the neighbouring mug", cmp(NEAR_CM, "<", 1.5), "critical"),
    ("alert when two mugs are within 2 cm of each other", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when a mug is within 2 cm of another mug", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when two mugs are no more than 2 cm apart", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when two mugs are at most 2 cm apart", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when a mug is 2 cm or less from another mug", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when a mug is no further than 2 cm from the next mug", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when a mug is not more than 2 cm from the closest mug", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when two mugs are up to 2 cm apart", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when two mugs are 2 cm or less apart", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when a mug is within 2 cm of another one", cmp(NEAR_CM, "<=", 2), "warning"),
    ("alert when a mug is at least 30 cm from another mug", cmp(NEAR_CM, ">=", 30), "warning"),
    ("alert when a mug is no closer than 30 cm to another mug", cmp(NEAR_CM, ">=", 30), "warning"),
    ("alert when a mug is 30 cm or more from the nearest mug", cmp(NEAR_CM, ">=", 30), "warning"),
    ("alert when a mug is not closer than 30 cm to another mug", cmp(NEAR_CM, ">=", 30), "warning"),
    ("alert when a mug is further than 30 cm from the nearest mug", cmp(NEAR_CM, ">", 30), "warning"),
    ("alert when a mug is farther than 30 cm from another mug", cmp(NEAR_CM, ">", 30), "warning"),
    ("alert when a mug is more than 30 cm away from another mug", cmp(NEAR_CM, ">", 30), "warning"),
    ("alert when a mug is over 30 cm from any other mug", cmp(NEAR_CM, ">", 30), "warning"),
    ("alert when a mug is more than 0.3 m from another mug", cmp(NEAR_CM, ">", 30), "warning"),
    ("alert when a mug is more than 300 mm from another mug", cmp(NEAR_CM, ">", 30), "warning"),
    ("alert when two mugs are touching", cmp(NEAR_PX, "<=", 0), "warning"),
    ("alert when two mugs touch", cmp(NEAR_PX, "<=", 0), "warning"),
    ("alert when a mug touches another mug", cmp(NEAR_PX, "<=", 0), "warning"),
    ("alert when a mug is touching another cup", cmp(NEAR_PX, "<=", 0), "warning"),
    ("alert when a mug does not touch another mug", cmp(NEAR_PX, ">", 0), "warning"),
    ("alert when two mugs are closer than 20 px", cmp(NEAR_PX, "<", 20), "warning"),
    ("alert when a mug is less than 20 pixels from another mug", cmp(NEAR_PX, "<", 20), "warning"),
    # -- the table edge -------------------------------------------------------------------------
    ("warn if any mug is within 5 cm of the table edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 5 centimetres of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 5 centimeters of the edge of the table", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 50 mm of the table's edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 50 millimetres of the table edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 50 millimeters of the table edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 0.05 m of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 0.05 metres of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 0.05 meters of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within five cm of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 5cm of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is at most 5 cm from the table edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is no more than 5 cm from the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is 5 cm or less from the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is 5 cm or closer to the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is no further than 5 cm from the edge of the desk", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is up to 5 cm from the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is not more than 5 cm away from the table edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug's distance to the edge is at most 5 cm", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug's edge distance is 5 cm or less", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug whose distance from the table edge is at most 5 cm", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is ≤ 5 cm from the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if there is a mug within 5 cm of the table edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if there's a mug within 5 cm of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is standing within 5 cm of the edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug sits within 5 cm of the surface edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is placed within 5 cm of the edge of the table", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is located within 5 cm of the counter's edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("warn if a mug is within 5 cm of its table's edge", cmp(EDGE_CM, "<=", 5), "warning"),
    ("alert when a mug is less than 3 cm from the edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is closer than 3 cm to the edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is nearer than 3 cm to the table edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is under 3 cm from the edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is below 3 cm from the edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug's distance to the table edge is less than 3 cm", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug's distance from the edge is under 3 cm", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is < 3 cm from the edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is not at least 3 cm from the edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is less than 30 mm away from the edge", cmp(EDGE_CM, "<", 3), "warning"),
    ("alert when a mug is within 2 inches of the edge", cmp(EDGE_CM, "<=", 5.08), "warning"),
    ("alert when a mug is within 2 in of the edge", cmp(EDGE_CM, "<=", 5.08), "warning"),
    ("alert when a mug is within two inches of the table edge", cmp(EDGE_CM, "<=", 5.08), "warning"),
    ("alert when a mug is within 1 inch of the edge", cmp(EDGE_CM, "<=", 2.54), "warning"),
    ("alert when a mug is within .5 inches of the edge", cmp(EDGE_CM, "<=", 1.27), "warning"),
    ("alert when a mug is within 1 foot of the edge", cmp(EDGE_CM, "<=", 30.48), "warning"),
    ("alert when a mug is within 2.5 cm of the edge", cmp(EDGE_CM, "<=", 2.5), "warning"),
    ("alert when a mug is within 25 mm of the edge", cmp(EDGE_CM, "<=", 2.5), "warning"),
    ("alert when a mug is within twenty-five millimetres of the edge", cmp(EDGE_CM, "<=", 2.5), "warning"),
    ("alert when a mug is within twenty five mm of the edge", cmp(EDGE_CM, "<=", 2.5), "warning"),
    ("alert when a mug is within twenty cm of the edge", cmp(EDGE_CM, "<=", 20), "warning"),
    ("alert when a mug is within fifteen cm of the edge", cmp(EDGE_CM, "<=", 15), "warning"),
    ("alert when a mug is within eleven cm of the edge", cmp(EDGE_CM, "<=", 11), "warning"),
    ("alert when a mug is at least 10 cm from the edge", cmp(EDGE_CM, ">=", 10), "warning"),
    ("alert when a mug is 10 cm or more from the edge", cmp(EDGE_CM, ">=", 10), "warning"),
    ("alert when a mug is no closer than 10 cm to the edge", cmp(EDGE_CM, ">=", 10), "warning"),
    ("alert when a mug is not within 10 cm of the edge", cmp(EDGE_CM, ">", 10), "warning"),
    ("alert when a mug isn't within 10 cm of the edge", cmp(EDGE_CM, ">", 10), "warning"),
    ("alert when a mug is further than 10 cm from the edge", cmp(EDGE_CM, ">", 10), "warning"),
    ("alert when a mug is within 10% of the table edge", cmp(EDGE_FRAC, "<=", 0.1), "warning"),
    ("alert when a mug is within 10 percent of the edge", cmp(EDGE_FRAC, "<=", 0.1), "warning"),
    ("alert when a mug is within 10 per cent of the edge", cmp(EDGE_FRAC, "<=", 0.1), "warning"),
    ("alert when a mug is within ten % of the edge", cmp(EDGE_FRAC, "<=", 0.1), "warning"),
    ("alert when a mug is less than 10% from the edge", cmp(EDGE_FRAC, "<", 0.1), "warning"),
    ("alert when a mug is closer than 5% to the table edge", cmp(EDGE_FRAC, "<", 0.05), "warning"),
    ("alert when a mug's distance to the edge is under 10%", cmp(EDGE_FRAC, "<", 0.1), "warning"),
    ("alert when a mug is within 40 px of the table edge", cmp(EDGE_PX, "<=", 40), "warning"),
    ("alert when a mug is within 40 pixels of the edge", cmp(EDGE_PX, "<=", 40), "warning"),
    # -- over the edge --------------------------------------------------------------------------
    ("page me if a mug is over the edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug is over the table edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug overhangs the edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug is overhanging the table edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug is overhanging", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug hangs over the edge of the table", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug is hanging over the table's edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug is hanging off the edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug sticks out over the edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug is sticking out past the edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug is over the edge of the desk", cmp(EDGE_PX, "<", 0), "critical"),
    ("page me if a mug overhangs the surface edge", cmp(EDGE_PX, "<", 0), "critical"),
    ("if a mug is over the edge, page me", cmp(EDGE_PX, "<", 0), "critical"),
    ("if a mug is over the edge then page me", cmp(EDGE_PX, "<", 0), "critical"),
    ("when a mug is over the edge page us", cmp(EDGE_PX, "<", 0), "critical"),
    # -- on / off a coaster ---------------------------------------------------------------------
    ("alert when a mug is not on a coaster", OFF, "warning"),
    ("alert when a mug is off its coaster", OFF, "warning"),
    ("alert when a mug is off a coaster", OFF, "warning"),
    ("alert when a mug isn't on a coaster", OFF, "warning"),
    ("alert when a mug is without a coaster", OFF, "warning"),
    ("alert when a mug has no coaster", OFF, "warning"),
    ("alert when a mug doesn't have a coaster", OFF, "warning"),
    ("alert when a mug does not have a coaster", OFF, "warning"),
    ("alert when a mug is missing its coaster", OFF, "warning"),
    ("alert when a mug is not standing on a coaster", OFF, "warning"),
    ("alert when a mug doesn't stand on a coaster", OFF, "warning"),
    ("alert when a mug does not sit on its coaster", OFF, "warning"),
    ("alert when a mug is not placed on a coaster", OFF, "warning"),
    ("alert when a mug is not resting on a coaster", OFF, "warning"),
    ("alert when a mug with no coaster", OFF, "warning"),
    ("alert when there is a mug without a coaster", OFF, "warning"),
    ("alert when there's a mug that isn't on a coaster", OFF, "warning"),
    ("alert when there is a cup that is not on a coaster", OFF, "warning"),
    ("alert when any mug is off its coaster", OFF, "warning"),
    ("alert when some mug is not on its coaster", OFF, "warning"),
    ("alert when the mug is not on the coaster", OFF, "warning"),
    ("alert when a mug that is not on a coaster", OFF, "warning"),
    ("notify me when a mug is on a coaster", cmp(ON, "==", True), "info"),
    ("notify me when a mug has a coaster", cmp(ON, "==", True), "info"),
    ("notify me when a mug is standing on its coaster", cmp(ON, "==", True), "info"),
    ("notify me when a mug sits on a coaster", cmp(ON, "==", True), "info"),
    ("notify me when a mug isn't off its coaster", cmp(ON, "==", True), "info"),
    ("notify me when a mug isn't without a coaster", cmp(ON, "==", True), "info"),
    # -- the coaster's centre -------------------------------------------------------------------
    ("alert when a mug is more than 2 cm from the centre of its coaster", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 2 cm from the center of its coaster", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 2 cm from the middle of its coaster", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 2 cm from its coaster's centre", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 2 cm from its coaster's center", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 2 cm off the centre of its coaster", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 2 cm off-centre", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 2 cm off-center", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 20 mm off centre", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is off-centre by more than 2 cm", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is off centre on its coaster by more than 2 cm", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is off-center on the coaster by over 2 cm", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug's offset from its coaster's centre exceeds 2 cm", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug's coaster offset is more than 2 cm", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug's coaster offset exceeds 20 millimetres", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is further than 2 cm from the centre of the coaster", cmp(OFFSET_CM, ">", 2), "warning"),
    ("alert when a mug is more than 30% off its coaster's centre", cmp(OFFSET_FRAC, ">", 0.3), "warning"),
    ("alert when a mug is more than 30% from the centre of its coaster", cmp(OFFSET_FRAC, ">", 0.3), "warning"),
    ("alert when a mug is more than 30 percent off-centre", cmp(OFFSET_FRAC, ">", 0.3), "warning"),
    ("alert when a mug is off-centre by more than 30%", cmp(OFFSET_FRAC, ">", 0.3), "warning"),
    ("alert when a mug's coaster offset exceeds 30%", cmp(OFFSET_FRAC, ">", 0.3), "warning"),
    ("alert when a mug is over 30% off its coaster's center", cmp(OFFSET_FRAC, ">", 0.3), "warning"),
    ("alert when a mug is more than 40 px from the centre of its coaster", cmp(OFFSET_PX, ">", 40), "warning"),
    ("alert when a mug is off-centre by more than 40 pixels", cmp(OFFSET_PX, ">", 40), "warning"),
    ("alert when a mug is within 1 cm of the centre of its coaster", cmp(OFFSET_CM, "<=", 1), "warning"),
    ("alert when a mug is less than 1 cm from its coaster's centre", cmp(OFFSET_CM, "<", 1), "warning"),
    # -- quality and confidence -----------------------------------------------------------------
    ("warn if a mug has quality below 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has a quality below 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has quality under 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has quality less than 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has quality lower than forty", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has a quality of less than 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug with quality below 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug with a placement quality under 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has a quality score below 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug's quality is below 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug's quality is less than 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug's placement quality is under 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug whose quality is below 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has quality < 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has quality below 40%", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug's quality isn't at least 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has quality smaller than 40", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug's quality is not 40 or more", cmp(QUALITY, "<", 40), "warning"),
    ("warn if a mug has quality of 40 or less", cmp(QUALITY, "<=", 40), "warning"),
    ("warn if a mug has quality at most 40", cmp(QUALITY, "<=", 40), "warning"),
    ("warn if a mug's quality doesn't exceed 40", cmp(QUALITY, "<=", 40), "warning"),
    ("alert when a mug has confidence at least 0.9", cmp(CONFIDENCE, ">=", 0.9), "warning"),
    ("alert when a mug has a confidence of at least 90%", cmp(CONFIDENCE, ">=", 0.9), "warning"),
    ("alert when a mug has detection confidence of 0.9 or more", cmp(CONFIDENCE, ">=", 0.9), "warning"),
    ("alert when a mug's confidence is at least 0.9", cmp(CONFIDENCE, ">=", 0.9), "warning"),
    ("alert when a mug's confidence is 90% or higher", cmp(CONFIDENCE, ">=", 0.9), "warning"),
    ("alert when a mug with confidence ≥ 0.9", cmp(CONFIDENCE, ">=", 0.9), "warning"),
    ("alert when a mug has confidence below 50%", cmp(CONFIDENCE, "<", 0.5), "warning"),
    ("alert when a mug's detection confidence is under 0.5", cmp(CONFIDENCE, "<", 0.5), "warning"),
    # -- colours --------------------------------------------------------------------------------
    ("alert when a red mug is not on a coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when a mug coloured red is not on a coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when a mug colored red is not on a coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when a mug whose colour is red is not on a coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when a mug whose color is red is off its coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when a mug that is red is not on a coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when there is a red mug without a coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when a red cup isn't on a coaster", all_(cmp(COLOUR, "==", "red"), OFF), "warning"),
    ("alert when a gray mug is on a coaster", all_(cmp(COLOUR, "==", "grey"), cmp(ON, "==", True)), "warning"),
    ("alert when a grey mug is on a coaster", all_(cmp(COLOUR, "==", "grey"), cmp(ON, "==", True)), "warning"),
    ("alert when a mug colored gray is on a coaster", all_(cmp(COLOUR, "==", "grey"), cmp(ON, "==", True)), "warning"),
    ("alert when a mug is blue", cmp(COLOUR, "==", "blue"), "warning"),
    ("alert when a mug is not blue", cmp(COLOUR, "!=", "blue"), "warning"),
    ("alert when a mug whose colour isn't blue", cmp(COLOUR, "!=", "blue"), "warning"),
    # -- the verdict ----------------------------------------------------------------------------
    ("log when the verdict is violation", cmp(VERDICT, "==", "violation"), "info"),
    ("log when the verdict is a violation", cmp(VERDICT, "==", "violation"), "info"),
    ("log when the placement is a violation", cmp(VERDICT, "==", "violation"), "info"),
    ("log when the placement verdict is violation", cmp(VERDICT, "==", "violation"), "info"),
    ("log when the overall verdict is violation", cmp(VERDICT, "==", "violation"), "info"),
    ("alert when the verdict is not ok", cmp(VERDICT, "!=", "ok"), "warning"),
    ("alert when the verdict isn't okay", cmp(VERDICT, "!=", "ok"), "warning"),
    ("alert when the verdict is anything but ok", cmp(VERDICT, "!=", "ok"), "warning"),
    ("alert when the verdict is anything other than fine", cmp(VERDICT, "!=", "ok"), "warning"),
    ("alert when the placement is not fine", cmp(VERDICT, "!=", "ok"), "warning"),
    ("alert when the verdict is warning or violation", NOT_OK, "warning"),
    ("alert when the verdict is either a warning or a violation", NOT_OK, "warning"),
    ("alert when the verdict is a warning or violation", NOT_OK, "warning"),
    # -- who is told, and how urgently ----------------------------------------------------------
    ("tell me when a mug is off its coaster", OFF, "info"),
    ("let me know when a mug is off its coaster", OFF, "info"),
    ("inform us when a mug is off its coaster", OFF, "info"),
    ("if a mug is off its coaster, let me know", OFF, "info"),
    ("send me a notification when a mug is off its coaster", OFF, "info"),
    ("send an alert when a mug is off its coaster", OFF, "warning"),
    ("raise a warning whenever a mug is off its coaster", OFF, "warning"),
    ("send a critical alert as soon as a mug is off its coaster", OFF, "critical"),
    ("raise an urgent alert when a mug is off its coaster", OFF, "critical"),
    ("critical alarm every time a mug is off its coaster", OFF, "critical"),
    ("warn me each time a mug is off its coaster", OFF, "warning"),
    ("alert any time a mug is off its coaster", OFF, "warning"),
    ("when a mug is off its coaster, raise a critical alert", OFF, "critical"),
    ("if a mug is off its coaster then warn us", OFF, "warning"),
    ("whenever a mug is off its coaster", OFF, None),
    # -- several conditions ---------------------------------------------------------------------
    ("alert when a mug is not on a coaster and within 5 cm of the edge", OFF_NEAR_EDGE, "warning"),
    ("alert when a mug is off its coaster and it is within 5 cm of the edge", OFF_NEAR_EDGE, "warning"),
    ("alert when a mug is off its coaster and it's within 50 mm of the edge", OFF_NEAR_EDGE, "warning"),
    ("alert when a mug is off its coaster but within 5 cm of the edge", OFF_NEAR_EDGE, "warning"),
    ("alert when a mug that is not on a coaster is within 5 cm of the edge", OFF_NEAR_EDGE, "warning"),
    ("alert when a mug without a coaster is within 5 cm of the edge", OFF_NEAR_EDGE, "warning"),
    ("alert when a mug off its coaster stands within 5 cm of the edge", OFF_NEAR_EDGE, "warning"),
    ("alert when a mug with quality below 40 has no coaster", all_(cmp(QUALITY, "<", 40), OFF), "warning"),
    ("alert when a mug whose quality is below 40 is not on a coaster", all_(cmp(QUALITY, "<", 40), OFF), "warning"),
    ("alert when a mug is off its coaster and its quality is below 40", all_(OFF, cmp(QUALITY, "<", 40)), "warning"),
    (
        "alert when a mug's confidence is below 0.5 and its distance to the edge is under 2 cm",
        all_(cmp(CONFIDENCE, "<", 0.5), cmp(EDGE_CM, "<", 2)),
        "warning",
    ),
    (
        "alert when a mug is off its coaster, and the verdict is violation",
        all_(OFF, cmp(VERDICT, "==", "violation")),
        "warning",
    ),
    (
        "alert when a mug is over the edge or more than 3 mugs are on the table",
        any_(cmp(EDGE_PX, "<", 0), cmp(MUGS, ">", 3)),
        "warning",
    ),
    (
        "alert when a mug is over the edge, or the mug count exceeds 3",
        any_(cmp(EDGE_PX, "<", 0), cmp(MUGS, ">", 3)),
        "warning",
    ),
    (
        "alert when the mug count exceeds 3 and the verdict is not ok",
        all_(cmp(MUGS, ">", 3), cmp(VERDICT, "!=", "ok")),
        "warning",
    ),
    (
        "critical when two mugs are closer than 1.5 cm and the verdict is violation",
        all_(cmp(NEAR_CM, "<", 1.5), cmp(VERDICT, "==", "violation")),
        "critical",
    ),
    (
        "alert when there are no coasters or the number of mugs is above 2",
        any_(cmp(COASTERS, "==", 0), cmp(MUGS, ">", 2)),
        "warning",
    ),
]

# (sentence, the word the error points at; "" is the end of the sentence)
NONSENSE: list[tuple[str, str]] = [
    # vague: no amount to compare with
    ("alert when a mug is near the edge", "near"),
    ("alert when a mug is close to the edge", "close"),
    ("alert when a mug is far from the edge", "far"),
    ("alert when a mug has low quality", "low"),
    ("alert when several mugs are on the table", "several"),
    ("alert when many mugs are on the table", "many"),
    ("alert when lots of mugs are on the table", "lots"),
    ("alert when the mug count is big", "big"),
    ("alert when the verdict is bad", "bad"),
    # a value with no comparison, or one beyond the scale: which was meant is a guess
    ("alert when a mug is 5 cm from the edge", "5"),
    ("alert if a mug is 2 cm or so from the edge", "2"),
    ("alert when a mug has quality 40", "40"),
    ("alert when a mug's quality is 40", "40"),
    ("alert when a mug has confidence of 0.9", "0.9"),
    ("alert when a mug has confidence below 50", "50"),
    ("alert when a mug has quality above 140", "140"),
    ("alert when a mug is off-centre", ""),
    ("alert when a mug is more than 5 cm from the centre", ""),
    ("alert when a mug is more than 2 cm from its coaster", ""),
    # every / all / no mug: a rule fires when some mug matches
    ("alert when every mug is on a coaster", "every"),
    ("alert when all mugs are on coasters", "all"),
    ("alert when each mug is off its coaster", "each"),
    ("alert when both mugs are on coasters", "both"),
    ("alert when mugs are off their coasters", "mugs"),
    ("alert when no mug is on a coaster", "on"),
    ("alert when more than 2 mugs are off their coasters", "off"),
    ("alert when two mugs are off their coasters", "off"),
    ("alert when more mugs than coasters are visible", "more"),
    # two mugs: only an upper bound on their gap is the nearest-mug distance
    ("alert when two mugs are further than 10 cm apart", "further"),
    ("alert when two mugs are at least 10 cm apart", "at"),
    ("alert when two mugs are 2 cm apart", "2"),
    ("alert when three mugs are closer than 2 cm", "three"),
    ("alert when more than two mugs are within 2 cm of each other", "more"),
    ("alert when two mugs are within 2 cm of the edge", "the"),
    ("alert when two mugs are closer than 2 cm to the nearest mug", "the"),
    ("alert when two mugs are closer than 5% apart", "%"),
    ("alert when a mug is within 5% of another mug", "%"),
    ("alert when a mug is more than 30 percent away from another mug", "percent"),
    # changes over time, and words the grammar does not have
    ("alert when the mug count drops below 4", "drops"),
    ("alert when a mug's quality falls below 40", "falls"),
    ("alert when a mug gets closer than 2 cm to the edge", "gets"),
    ("alert when the verdict becomes violation", "becomes"),
    ("alert when the mug count rises above 4", "rises"),
    ("alert when a mug is within 5 cm of the edge unless it is on a coaster", "unless"),
    ("alert when the verdict is not ok or warning", "or"),
    ("alert when a mug is between 2 and 5 cm from the edge", "between"),
    ("alert when a mug overhangs the edge by 2 cm", "by"),
    ("alert when a mug touches the edge", "the"),
    ("alert when a mug is on the edge", "edge"),
    ("alert when a mug is on the table", "table"),
    ("alert when there is a mug on the table", "table"),
    ("alert when the table is empty", "table"),
    ("alert when a mug is closer than 2 cm to the wall", "wall"),
    ("alert when a mug is within 5 cm of the edge for a while", "while"),  # "for 5 minutes" is a duration now
    ("alert when a mug's colour is purple-ish", "purple-ish"),
    # numbers and units it cannot read
    ("alert when a mug is within 5 parsecs of the edge", "parsecs"),
    ("alert when a mug is within 1,5 cm of the edge", ","),
    ("alert when a mug is within five of the edge", "of"),
    ("alert when a mug is within -5 cm of the edge", "-"),
    ("alert when more than 2.5 mugs are on the table", "2.5"),
    ("alert when the mug count exceeds 2.5", "2.5"),
    ("alert when the number of mugs > 2.5", "2.5"),
    ("alert when 3+ mugs are on the table", "+"),
    ("alert when a mug is within 5 cm or 3 cm of the edge", "or"),
    ("alert when a mug is within 10 cm of the edge in camera", ""),
    ("alert when a mug is on a coaster with a cooldown of 30 days", "alert"),
]

# What every GRAMMAR.md example compiled to before the paraphrases were added: they must not move.
GRAMMAR_EXAMPLES: list[tuple[str, Json, str, list[str], int, str]] = [
    ("alert when a mug is not on a coaster", OFF, "warning", [], 60, "publish"),
    ("warn if any mug is within 5 cm of the table edge", cmp(EDGE_CM, "<=", 5), "warning", [], 60, "publish"),
    (
        "notify me when more than 3 mugs are on the table in camera kitchen-1",
        cmp(MUGS, ">", 3),
        "info",
        ["kitchen-1"],
        60,
        "publish",
    ),
    ("critical if a mug is closer than 2 cm to another mug", cmp(NEAR_CM, "<", 2), "critical", [], 60, "publish"),
    (
        "log when the verdict is violation in cameras hall, desk-2 at most once per 10 minutes",
        cmp(VERDICT, "==", "violation"),
        "info",
        ["hall", "desk-2"],
        600,
        "log",
    ),
    (
        "alert when a mug is not on a coaster and within 20 mm of the edge of the table",
        all_(OFF, cmp(EDGE_CM, "<=", 2)),
        "warning",
        [],
        60,
        "publish",
    ),
    ("page me if a mug is over the edge", cmp(EDGE_PX, "<", 0), "critical", [], 60, "publish"),
    (
        'warn when a red mug is off its coaster, only in camera "front door"',
        all_(cmp(COLOUR, "==", "red"), OFF),
        "warning",
        ["front door"],
        60,
        "publish",
    ),
    (
        "notify me when there are no coasters with a cooldown of 30 seconds",
        cmp(COASTERS, "==", 0),
        "info",
        [],
        30,
        "publish",
    ),
    (
        "alert when 2 or more mugs are on the table and the verdict is not ok",
        all_(cmp(MUGS, ">=", 2), cmp(VERDICT, "!=", "ok")),
        "warning",
        [],
        60,
        "publish",
    ),
    (
        "warn if a mug has quality below 40 or it is further than 50 cm from another mug",
        any_(cmp(QUALITY, "<", 40), cmp(NEAR_CM, ">", 50)),
        "warning",
        [],
        60,
        "publish",
    ),
    (
        "raise a critical alert if the mug is within 40 px of the table edge once per hour",
        cmp(EDGE_PX, "<=", 40),
        "critical",
        [],
        3600,
        "publish",
    ),
]


def test_the_corpus_is_large_and_has_no_duplicates() -> None:
    sentences = [row[0] for row in PARAPHRASES]
    assert len(sentences) >= 200
    assert len(set(sentences)) == len(sentences)
    assert len(NONSENSE) >= 50
    assert len({row[0] for row in NONSENSE}) == len(NONSENSE)


@pytest.mark.parametrize(("sentence", "condition", "severity"), PARAPHRASES, ids=[p[0] for p in PARAPHRASES])
def test_paraphrase_compiles_to_its_rule(sentence: str, condition: Json, severity: str | None) -> None:
    rule = compile_sentence(sentence)
    assert rule_to_json(rule)["condition"] == condition
    assert rule.severity == (severity or "warning")
    # whatever it compiles to is a rule the decoder accepts unchanged and Avro can carry
    assert rule_from_json(json.dumps(rule_to_json(rule))) == rule
    codec.encode("RuleDefinition", rule_to_record(rule))


def flat(node: Condition) -> Condition:
    """``(a and b) and c`` is ``a and b and c``: the canonical sentence need not keep the nesting."""
    if isinstance(node, AllOf | AnyOf):
        kind = type(node)
        children: list[Condition] = []
        for child in map(flat, node.children):
            children.extend(child.children if isinstance(child, kind) else (child,))
        return kind(tuple(children))
    return node


@pytest.mark.parametrize("sentence", [p[0] for p in PARAPHRASES] + [g[0] for g in GRAMMAR_EXAMPLES])
def test_the_canonical_sentence_says_the_same_rule(sentence: str) -> None:
    rule = compile_sentence(sentence)
    canonical = canonical_sentence(rule)
    assert canonical is not None
    again = compile_sentence(canonical)
    assert flat(again.condition) == flat(rule.condition)
    assert (again.severity, again.action, again.sources, again.cooldown_s) == (
        rule.severity,
        rule.action,
        rule.sources,
        rule.cooldown_s,
    )
    assert canonical_sentence(again) == canonical  # one fixed phrasing per meaning


@pytest.mark.parametrize(("sentence", "word"), NONSENSE, ids=[n[0] for n in NONSENSE])
def test_nonsense_is_refused_at_the_word(sentence: str, word: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_sentence(sentence)
    error = info.value
    if word:
        assert sentence[error.position :].startswith(word), (error.position, str(error))
        # what would fit is named, except for a character no word has, or a rule that reads but does not
        # validate (reported for the whole sentence)
        if not error.detail.startswith(("unexpected character", "the sentence reads")):
            assert error.expected, str(error)
    else:
        assert error.position == len(sentence), str(error)
        assert "ends too early" in error.detail
    message = str(error)
    caret = next(line for line in message.splitlines() if set(line.strip()) == {"^"})
    assert caret.index("^") - 2 == error.position
    assert "accepted forms" in message


@pytest.mark.parametrize(
    ("sentence", "words"),
    [
        ("alert when a mug is near the edge", "names no amount"),
        ("alert when the mug count drops below 4", "describes a change"),
        ("alert when every mug is on a coaster", "some mug matches"),
        ("alert when no mug is on a coaster", "not of mugs in some state"),
        ("alert when two mugs are further than 10 cm apart", "only an upper bound"),
        ("alert when a mug is within 5% of another mug", "not between mugs"),
        ("alert when more mugs than coasters are visible", "not with another count"),
        ("alert when a mug has confidence below 50", "write 0.5 or 50%"),
        ("alert when the verdict is not ok or warning", "ambiguous"),
        ("alert when a mug is 5 cm from the edge", "needs a comparison"),
        ("alert when a mug is more than 2 cm from its coaster", "to its centre"),
        ("alert when a mug is within 5 cm of the edge unless it is on a coaster", "'unless' is not part"),
    ],
)
def test_refusals_say_why(sentence: str, words: str) -> None:
    with pytest.raises(RuleSyntaxError, match=re.escape(words)):
        compile_sentence(sentence)


@pytest.mark.parametrize(
    ("sentence", "condition", "severity", "sources", "cooldown", "action"), GRAMMAR_EXAMPLES, ids=lambda v: str(v)[:40]
)
def test_documented_examples_compile_as_before(
    sentence: str, condition: Json, severity: str, sources: list[str], cooldown: int, action: str
) -> None:
    record = rule_to_json(compile_sentence(sentence))
    assert record["condition"] == condition
    assert (record["severity"], record["sources"], record["cooldown_s"]) == (severity, sources, cooldown)
    assert record["action"] == {"type": action, "target": None}


def test_every_documented_example_is_frozen_here() -> None:
    text = GRAMMAR.read_text(encoding="utf-8")
    block = re.search(r"### Examples\s+```text\n(.*?)```", text, re.S)
    assert block is not None
    documented = [line for line in block.group(1).splitlines() if line.strip()]
    frozen = [row[0] for row in GRAMMAR_EXAMPLES]
    assert frozen == documented[: len(frozen)]
    assert set(EXAMPLES) <= set(documented)
    for example in documented[len(frozen) :]:  # the newer ones: each one is in the corpus above
        assert example in {row[0] for row in PARAPHRASES}, example


def test_every_word_of_the_vocabulary_is_in_the_grammar_doc() -> None:
    text = GRAMMAR.read_text(encoding="utf-8")
    vocabulary = [
        *language.LEADS, *language.ALERT_NOUNS, *language.LEVELS, *language.TRAILING_LEADS,
        *(word for phrase in language.TRIGGER_PHRASES for word in phrase), *language.DETERMINERS,
        *language.COLOURS, *language.UNITS, *language.PERCENT_WORDS, *language.SURFACES,
        *language.SURFACE_POSSESSIVES, *language.COUNT_THINGS, *language.COUNT_NOUNS, *language.CENTRES,
        *language.OFF_CENTRE, *language.MUG_TARGET_WORDS, *language.NEIGHBOURS, *language.PARTICIPLES,
        *language.MORE_WORDS, *language.LESS_WORDS, *language.FURTHER_WORDS, *language.CLOSER_WORDS,
        *language.OR_BOUNDS, *language.SYMBOLS, *language.VERDICTS, *language.PLACES_AFTER_IN,
        *language.PLACE_WORDS, *language.ATTRIBUTES, *language.TIME_UNITS,
    ]  # fmt: skip
    missing = sorted({word for word in vocabulary if f'"{word}"' not in text})
    assert missing == []


@pytest.mark.parametrize(
    ("sentence", "sources", "cooldown"),
    [
        ("alert when a red mug is not on a coaster in camera kitchen-1 only", ("kitchen-1",), 60),
        ("when a mug is over the edge in camera k, alert me at most once per hour", ("k",), 3600),
        ("if a mug is over the edge, page me in cameras a and b", ("a", "b"), 60),
        ("alert when a mug is off its coaster no more than once every 5 minutes", (), 300),
        ("alert when a mug is off its coaster not more than once per ten minutes", (), 600),
    ],
)
def test_scopes_and_cooldowns_around_the_new_forms(sentence: str, sources: tuple[str, ...], cooldown: int) -> None:
    rule = compile_sentence(sentence)
    assert (rule.sources, rule.cooldown_s) == (sources, cooldown)


def test_a_lead_is_given_once() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_sentence("alert when a mug is over the edge, page me")
    assert info.value.position == len("alert when a mug is over the edge")


# -- the derived centimetre offset ----------------------------------------------------------------


def test_coaster_offset_in_centimetres_is_worked_out_from_the_scale() -> None:
    rule = compile_sentence("alert when a mug is more than 2 cm from the centre of its coaster")
    rules = RuleSet([rule])
    far = position(mug(0, coaster_offset_px=10.0), mug(1, coaster_offset_px=30.0), px_per_cm=12.0)
    evaluation = rules.evaluate(far)
    assert [m.mug_index for m in evaluation.matches] == [1]
    assert evaluation.matches[0].evidence["mug.coaster_offset_cm"] == "2.5"
    assert not rules.evaluate(position(mug(0, coaster_offset_px=20.0), px_per_cm=12.0)).matches


@pytest.mark.parametrize(
    ("offset_px", "px_per_cm"),
    [(30.0, None), (None, 12.0), (30.0, 0.0), (float("nan"), 12.0), (30.0, float("nan"))],
)
def test_an_unknown_scale_or_offset_never_fires(offset_px: float | None, px_per_cm: float | None) -> None:
    for sentence in (
        "alert when a mug is more than 2 cm from the centre of its coaster",
        "alert when a mug is not more than 2 cm from the centre of its coaster",
    ):
        evaluation = RuleSet([compile_sentence(sentence)]).evaluate(
            position(mug(0, coaster_offset_px=offset_px), px_per_cm=px_per_cm)
        )
        assert evaluation.matches == () and evaluation.skips == ()


def test_an_event_without_the_scale_is_skipped_not_guessed() -> None:
    rule = compile_sentence("alert when a mug is off-centre by more than 2 cm and it is on a coaster")
    event = position(mug(0, coaster_offset_px=30.0))
    del event["px_per_cm"]
    evaluation = RuleSet([rule]).evaluate(event)
    assert evaluation.matches == ()
    assert [(s.reason, s.field) for s in evaluation.skips] == [("missing_field", "mug.coaster_offset_cm")]
    wrong = position(mug(0, coaster_offset_px="far"), px_per_cm=12.0)
    assert [s.reason for s in RuleSet([rule]).evaluate(wrong).skips] == ["wrong_type"]


# -- fuzzing: the new words never let anything but a syntax error escape ---------------------------

PARAPHRASE_WORDS = sorted(
    {word for sentence, _, _ in PARAPHRASES for word in re.findall(r"[\w'’.-]+|[%<>≤≥,]", sentence)}
    | {"unless", "every", "near", "drops", "5", "2.5", "0", "%", "than", "apart"}
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PARAPHRASE_WORDS), min_size=0, max_size=25))
def test_fuzz_paraphrase_word_salad_gives_errors_or_rules_that_say_themselves(words: list[str]) -> None:
    text = " ".join(["alert", "when", *words])
    try:
        rule = compile_sentence(text)
    except RuleSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return
    assert rule_from_json(json.dumps(rule_to_json(rule))) == rule
    codec.encode("RuleDefinition", rule_to_record(rule))
    canonical = canonical_sentence(rule)
    if canonical is not None:
        assert flat(compile_sentence(canonical).condition) == flat(rule.condition)
