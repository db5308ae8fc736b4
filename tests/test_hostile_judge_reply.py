"""The judge's reply parser against hostile replies: only JudgeReplyError, in bounded time, for any string.

The strategies build adversarial replies the way a hostile or broken judge would send them: deep nesting,
huge numbers, long runs of spaces, braces, quotes and tags, many near-verdicts, non-string parts inside JSON, cut
off anywhere, up to 100 kB. Sizes are drawn log-uniformly (most replies are short, some are 100 kB), seeded
(``derandomize=True``) so a failure reproduces. Each call's CPU time is checked against the issue's 50 ms bound:
the calling thread's own CPU time (``time.thread_time``; ``time.process_time`` would also count any other thread of
the test process), the best of up to three calls, then of up to five more spaced 0.2 s apart. A shared 2-core CI
machine once measured 78 ms (best of three back to back) for a reply parsed here in 3 ms; a parser that is really
slow on an input (say quadratic) is slow on every try.

The 10,000-example run draws one integer per example and builds the reply from it with :func:`recipe_reply`
(the same recipe as :func:`hostile_replies`): hypothesis spends about 1.5 ms drawing a structured example here,
which would make this one test take half a minute; the structured strategy runs 500 examples, where hypothesis
can shrink a failure to its smallest form.
"""

from __future__ import annotations

import gc
import json
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_length_reward.difficulty.judge import ASPECTS, JudgeReplyError, parse_judge_reply
from adaptive_length_reward.difficulty.judge.reply import MAX_REPLY_CHARS

#: The issue's bound for one call on a reply of up to 100 kB.
CALL_LIMIT_S = 0.050

MOTIFS = [
    '{"a":',
    "{",
    "}",
    "[",
    "]",
    "{[",
    '"',
    "'",
    "\\",
    '\\"',
    " ",
    "\n",
    "a ",
    "<think>",
    "</think>",
    "<think",
    "scene",
    "scene: ",
    "seg=",
    "language:",
    '"scene": 7, ',
    '{"scene": 7}',
    '{"scene":',
    '{"seg": 1, "scene": 2}',
    "9" * 50,
    "1e999",
    "-0.",
    "NaN",
    "/10",
    '{"scene": {"score": ',
    "[[[[",
    "((((",
    "{'",
    "it's ",
    "```json\n",
    '{"scene": 7, "seg": 4, "language": 2}',
    '{"scene": 7, "seg": 4, "language": 2',
    '"text": 5',
    "\x00",
    "\ud800",
    "ｓｃｅｎｅ",
    "Scene Complexity: 3/10 ",
    "{1: 2}",
    "{[1]: 2}",
    "{{}}",
    "True",
    "None,",
    "\\u0000",
    "𝟕",
]


#: Built once (a strategy made inside a composite is validated again on every draw).
SIZES = st.floats(0, 5)
#: Motif numbers: below len(MOTIFS) one of MOTIFS, above a random text seeded by the number (cheaper to draw
#: than hypothesis text, which would make the 10,000 examples take a minute).
MOTIF_LISTS = st.lists(st.integers(0, 4 * len(MOTIFS)), min_size=1, max_size=4)
ALPHABET = "{}[]\"':= \n\t,./-0123456789eE+aAsScCnNgGlLtT<>_\x00\u00e9\u2028\U0001d7d5"


def motif(number: int) -> str:
    if number < len(MOTIFS):
        return MOTIFS[number]
    rng = random.Random(number)
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12)))


SCORES = st.fixed_dictionaries({a: st.integers(-2, 12) for a in ASPECTS})
FRACTIONS = st.floats(0, 1)
CUTS = st.one_of(st.none(), FRACTIONS)


@st.composite
def hostile_replies(draw: st.DrawFn) -> str:
    """A reply of 1 character to 100 kB (log-uniform): a few motifs (or random text), each repeated to fill its
    share, a valid-looking verdict maybe inserted somewhere, maybe cut off anywhere."""
    size = int(10 ** draw(SIZES))
    motifs = [motif(n) for n in draw(MOTIF_LISTS)]
    reply = "".join(m * max(1, size // len(motifs) // len(m)) for m in motifs)[:MAX_REPLY_CHARS]
    if draw(st.booleans()):  # a verdict (scores maybe out of range) hidden somewhere
        at = int(draw(FRACTIONS) * len(reply))
        reply = reply[:at] + json.dumps(draw(SCORES)) + reply[at:]
    cut = draw(CUTS)
    return reply if cut is None else reply[: int(cut * len(reply))]


def recipe_reply(seed: int) -> str:
    """The reply of :func:`hostile_replies`' recipe, drawn from ``random.Random(seed)`` (reproducible)."""
    rng = random.Random(seed)
    size = int(10 ** rng.uniform(0, 5))
    motifs = [motif(rng.randrange(4 * len(MOTIFS) + 1)) for _ in range(rng.randint(1, 4))]
    reply = "".join(m * max(1, size // len(motifs) // len(m)) for m in motifs)[:MAX_REPLY_CHARS]
    if rng.random() < 0.5:
        at = int(rng.random() * len(reply))
        reply = reply[:at] + json.dumps({a: rng.randint(-2, 12) for a in ASPECTS}) + reply[at:]
    return reply if rng.random() < 0.5 else reply[: int(rng.random() * len(reply))]


def deep_json(depth: int, leaf: object) -> str:
    return '{"scene": ' * depth + json.dumps(leaf) + "}" * depth


def timed_parse(reply: str) -> tuple[dict[str, float] | None, float]:
    """The parse result (None for JudgeReplyError) and the call's CPU time in this thread; any other exception
    propagates."""
    gc.disable()  # a collection of the test runner's garbage is not the parser's time
    start = time.thread_time()
    try:
        return parse_judge_reply(reply), time.thread_time() - start
    except JudgeReplyError:
        return None, time.thread_time() - start
    finally:
        gc.enable()


def check(reply: str) -> None:
    aspects, elapsed = timed_parse(reply)
    if elapsed >= CALL_LIMIT_S:  # the machine is shared: the best of three calls is the parser's own time
        elapsed = min(elapsed, *(timed_parse(reply)[1] for _ in range(2)))
    for _ in range(5):  # still slow: a passing slowdown of the machine ends within a second
        if elapsed < CALL_LIMIT_S:
            break
        time.sleep(0.2)
        elapsed = min(elapsed, timed_parse(reply)[1])
    if len(reply) <= MAX_REPLY_CHARS:
        assert elapsed < CALL_LIMIT_S, f"{elapsed * 1000:.1f} ms for a reply of {len(reply)} chars: {reply[:80]!r}"
    if aspects is not None:
        assert set(aspects) == set(ASPECTS) and all(1.0 <= v <= 10.0 for v in aspects.values())


SETTINGS = dict(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@settings(max_examples=10_000, **SETTINGS)  # type: ignore[arg-type]
@given(st.integers(0, 2**63))
def test_any_reply_parses_or_raises_judge_reply_error_within_50_ms(seed: int) -> None:
    check(recipe_reply(seed))


@settings(max_examples=500, **SETTINGS)  # type: ignore[arg-type]
@given(hostile_replies())
def test_structured_hostile_replies_parse_or_raise_judge_reply_error(reply: str) -> None:
    check(reply)


pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@pytest.mark.parametrize(
    "reply",
    [
        '{"a":' * 3000,  # RecursionError before
        '{"scene": ' + "9" * 5000 + ', "seg": 4, "language": 2}',  # int-digits ValueError before
        '{"scene": ' + "9" * 400 + ', "seg": 4, "language": 2}',  # an int beyond float range
        "{'scene': " + "9" * 400 + ", 'seg': 4, 'language': 2}",
        "a" + " " * 99_000,  # cubic before
        "{" * 99_000,
        "<think>" * 14_000,
        '{"scene":1}' * 9_000,
        "scene: 1 " * 11_000,
        "{" + "[" * 99_000 + "}",
        deep_json(900, 7),
        deep_json(20, {"score": {"score": {"score": 7}}}),
        '{"scene": {"score": ' * 2000,
        "{'scene': 7, 'seg': 4, 'language': " + "(" * 500 + "2" + ")" * 500 + "}",
        "{" + "1+" * 5000 + "1}",
        "x" * (MAX_REPLY_CHARS + 1),
    ],
)
def test_reported_hostile_replies(reply: str) -> None:
    with pytest.raises(JudgeReplyError):
        check(reply)
        parse_judge_reply(reply)


def test_hostile_padding_does_not_hide_a_verdict() -> None:
    verdict = '{"scene": 7, "seg": 4, "language": 2}'
    for padding in ("{" * 50_000, "a" + " " * 50_000, "<think>" * 5_000, "it's {" * 5_000, '{"a":' * 5_000):
        assert parse_judge_reply(padding + "\n" + verdict) == {"scene": 7.0, "seg": 4.0, "language": 2.0}, padding[:9]


def test_an_over_long_reply_is_refused_with_its_size() -> None:
    with pytest.raises(JudgeReplyError, match=f"at most {MAX_REPLY_CHARS} characters"):
        parse_judge_reply('{"scene": 7, "seg": 4, "language": 2}' + " " * MAX_REPLY_CHARS)
    # <think> blocks do not count towards the limit
    thinking = "<think>" + "hmm " * 50_000 + "</think>"
    assert parse_judge_reply(thinking + '{"scene": 7, "seg": 4, "language": 2}')["scene"] == 7.0
