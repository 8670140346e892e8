"""What caches and routing save on the example agent's eval traffic, and what they cost the loop.

    python benchmarks/cost_savings.py --requests 240 --rounds 5 \
        --output benchmarks/results/cost-savings-DATE.md

Traffic: the single-turn inputs of `examples/support_agent/evals/` (cases without history and without
approval-gated writes), replayed as `--requests` requests whose case is drawn from a Zipf
distribution (s = 1.1: a few questions are asked often, most rarely, as in support traffic); 40% of
repeats are paraphrased (lower-cased, punctuation dropped, "hi, " or " please" added), and each
request comes from its case's user (the example's orders belong to users), one tenant. The same
traffic (same seed) is replayed in a fresh database for each configuration:

- `off`: no cache, no routing (every call to the large model);
- `exact`: the exact response cache; `semantic`: the semantic final-answer cache; `tools`: the
  read tools with `cache_ttl=600`; `routing`: first call and calls after a tool result on the small
  tier, final answers escalated to large when they hedge; `all`: everything on, `user_independent`.

The model is Tether's scripted example policy (deterministic, offline); the benchmark only adds a
simulated provider latency (`--large-ms`, `--small-ms` per call) and prices (gpt-4o for large,
gpt-4o-mini for small, via `[prices]`), so cost and latency savings are measured through the real
loop, store and caches. False hits: a semantic hit whose answer differs from the answer the `off`
run gave to the same request is a false hit; also reported offline over every pair of distinct
cases (would the matcher serve one case's answer for the other?).

Loop overhead: `--rounds` interleaved rounds of the same 40 unique requests (no cache can hit)
with everything off and everything on, zero simulated latency; median/min/max of ms per run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "support_agent"

PRICES = """
[prices."scripted:large"]
input_per_mtok = 2.50
output_per_mtok = 10.00

[prices."scripted:small"]
input_per_mtok = 0.15
output_per_mtok = 0.60
"""

ROUTING = """
[routing]
default = "large"
escalate_to = "large"

[routing.tiers]
small = ["scripted:small"]

[[routing.rules]]
tier = "small"
step = ["first", "after_tool"]
"""

CONFIGS: dict[str, str] = {
    "off": "[cache]\ntools = false\n",
    "exact": "[cache]\nresponse = true\ntools = false\n",
    "semantic": "[cache]\nsemantic = true\ntools = false\n",
    "tools": "[cache]\ntools = true\n",
    "routing": ROUTING + "[cache]\ntools = false\n",
    "all": ROUTING + "[cache]\nresponse = true\nsemantic = true\ntools = true\nuser_independent = true\n",
}

POLICY = """
import time
from .policy import respond as example

LATENCY_S = {{"scripted:large": {large}, "scripted:small": {small}}}


def respond(turn):
    time.sleep(LATENCY_S.get(turn.model, 0.0))
    return example(turn)
"""

TOOLS = """
import dataclasses
from . import tools as example
from .tools import *  # noqa: F403

for _name in ("search_policy", "lookup_order", "check_return_eligibility"):
    _fn = getattr(example, _name)
    _fn.__tether_tool__ = dataclasses.replace(_fn.__tether_tool__, cache_ttl={ttl})
"""


@dataclass
class Request:
    case: str
    user: str
    input: str


@dataclass
class Outcome:
    cost: float = 0.0
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    semantic_hits: list[int] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)


def cases() -> list[tuple[str, str, str]]:
    """(case id, input, user) of the suite's single-turn cases that need no approval."""
    from tether.evals.cases import load_suites

    found = []
    for suite in load_suites(EXAMPLE):
        for case in suite.cases:
            gated = "issue_refund" in case.model_dump_json()
            if not case.history and not gated and str(case.category) != "safety":
                found.append((case.id, case.input, case.user))
    return found


def paraphrase(text: str, rng: random.Random) -> str:
    variants = [
        text.lower(),
        text.rstrip("?.!"),
        "hi, " + text[0].lower() + text[1:],
        text.rstrip("?.!") + " please?",
    ]
    return rng.choice(variants)


def traffic(pool: list[tuple[str, str, str]], requests: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(pool))]
    order = pool[:]
    rng.shuffle(order)
    seen: set[str] = set()
    out = []
    for _ in range(requests):
        case, text, user = rng.choices(order, weights)[0]
        if case in seen and rng.random() < 0.4:
            text = paraphrase(text, rng)
        seen.add(case)
        out.append(Request(case, user, text))
    return out


def project(root: Path, extra: str, large_ms: float, small_ms: float) -> Path:
    target = root / "project"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", ".tether"))
    (target / "bench_policy.py").write_text(POLICY.format(large=large_ms / 1000, small=small_ms / 1000))
    (target / "bench_tools.py").write_text(TOOLS.format(ttl=600))
    toml = (target / "tether.toml").read_text()
    toml = toml.replace('primary = "scripted:support-v1"', 'primary = "scripted:large"')
    toml = toml.replace('scripted_policy = "policy:respond"', 'scripted_policy = "bench_policy:respond"')
    toml = toml.replace('tools_module = "tools"', 'tools_module = "bench_tools"')
    toml = toml.replace("max_cost_usd_per_run = 0.05", "max_cost_usd_per_run = 1.0")
    (target / "tether.toml").write_text(toml + PRICES + textwrap.dedent(extra))
    return target


async def replay(name: str, requests: list[Request], large_ms: float, small_ms: float) -> Outcome:
    from tether.agent.data import build_data
    from tether.agent.project import load_agent
    from tether.rollout.releases import snapshot_of, working_copy_release
    from tether.runtime.service import Runtime
    from tether.settings import Settings
    from tether.store.records import RunOrigin, StepKind
    from tether.store.repository import Store

    with tempfile.TemporaryDirectory(prefix=f"cost-{name}-") as scratch:
        root = Path(scratch)
        folder = project(root, CONFIGS[name], large_ms, small_ms)
        store = await Store.open(f"sqlite+aiosqlite:///{root / 'tether.db'}")
        try:
            release = await working_copy_release(store, folder)
            build_data(load_agent(snapshot_of(release)), root / "data")
            runtime = Runtime(store, Settings(model_backoff_s=0), data_dir=root / "data")
            outcome = Outcome()
            started = time.perf_counter()
            for number, request in enumerate(requests):
                run = await runtime.submit(
                    release, origin=RunOrigin.API, user_id=request.user, input=request.input, tenant_id="acme"
                )
                done = await runtime.execute(run.id)
                outcome.cost += done.estimated_cost_usd
                outcome.outputs.append(done.output or "")
                for step in await store.list_steps(run.id):
                    for asked in (step.cache or "").split(","):
                        if asked.endswith(":hit"):
                            outcome.hits[asked] = outcome.hits.get(asked, 0) + 1
                            if asked == "semantic:hit":
                                outcome.semantic_hits.append(number)
                    if step.kind == StepKind.MODEL_CALL and step.tier:
                        outcome.tiers[step.tier] = outcome.tiers.get(step.tier, 0) + 1
            outcome.seconds = time.perf_counter() - started
            return outcome
        finally:
            await store.close()


def offline_false_hits(pool: list[tuple[str, str, str]], threshold: float) -> tuple[int, int, list[str]]:
    """Pairs of distinct cases the matcher would confuse, over all ordered pairs."""
    from tether.caches.semantic import best_match, embed, identifiers

    vectors = {case: embed(text) for case, text, _ in pool}
    confused, pairs, examples = 0, 0, []
    for case, text, _ in pool:
        for other, other_text, _ in pool:
            if other == case:
                continue
            pairs += 1
            entry = {"vector": vectors[other], "identifiers": sorted(identifiers(other_text)), "value": other}
            if best_match(text, vectors[case], [entry], threshold) is not None:
                confused += 1
                if len(examples) < 5:
                    examples.append(f"{text!r} -> {other_text!r}")
    return confused, pairs, examples


async def overhead(rounds: int) -> dict[str, list[float]]:
    pool = cases()
    unique = [
        Request(case, user, f"{text} (request {i})") for i, (case, text, user) in enumerate((pool * 3)[:40])
    ]
    results: dict[str, list[float]] = {"off": [], "all": []}
    for _ in range(rounds):
        for name in ("off", "all"):
            outcome = await replay(name, unique, 0.0, 0.0)
            results[name].append(outcome.seconds / len(unique) * 1000)
    return results


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} (min {min(values):.1f}, max {max(values):.1f})"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large-ms", type=float, default=40.0)
    parser.add_argument("--small-ms", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    from tether.caches.semantic import embed

    embed("warm up")  # the embedding model loads once per process (about 2 s): not part of any replay
    pool = cases()
    requests = traffic(pool, args.requests, args.seed)
    distinct_inputs = len({r.input for r in requests})
    lines = [
        "# Cost savings: caches and routing on the example's eval traffic",
        "",
        f"`python benchmarks/cost_savings.py --requests {args.requests} --rounds {args.rounds} "
        f"--large-ms {args.large_ms:g} --small-ms {args.small_ms:g} --seed {args.seed}`",
        "",
        f"Traffic: {args.requests} requests over {len(pool)} single-turn eval cases, Zipf s=1.1, "
        "40% of repeats paraphrased, each from its case's user, one tenant "
        f"({distinct_inputs} distinct inputs). "
        f"Simulated provider latency {args.large_ms:g} ms (large) / {args.small_ms:g} ms (small) per "
        "call; prices gpt-4o (large) and gpt-4o-mini (small).",
        "",
        "| config | cost USD | saved vs off | wall s | saved vs off | hits | model calls by tier |",
        "|---|---|---|---|---|---|---|",
    ]
    results: dict[str, Outcome] = {}
    for name in CONFIGS:
        results[name] = await replay(name, requests, args.large_ms, args.small_ms)
        print(f"{name}: ${results[name].cost:.4f} in {results[name].seconds:.1f}s", file=sys.stderr)
    base = results["off"]
    for name, outcome in results.items():
        saved_cost = 1 - outcome.cost / base.cost if base.cost else 0.0
        saved_time = 1 - outcome.seconds / base.seconds if base.seconds else 0.0
        hits = ", ".join(f"{k} {v}" for k, v in sorted(outcome.hits.items())) or "-"
        tiers = ", ".join(f"{k} {v}" for k, v in sorted(outcome.tiers.items())) or "large (no routing)"
        lines.append(
            f"| {name} | {outcome.cost:.4f} | {saved_cost:.0%} | {outcome.seconds:.1f} | {saved_time:.0%} "
            f"| {hits} | {tiers} |"
        )
    lines += ["", "## Semantic cache false hits", ""]
    for name in ("semantic", "all"):
        outcome = results[name]
        wrong = [i for i in outcome.semantic_hits if outcome.outputs[i] != base.outputs[i]]
        rate = len(wrong) / len(outcome.semantic_hits) if outcome.semantic_hits else 0.0
        lines.append(
            f"- `{name}`: {len(outcome.semantic_hits)} semantic hits, {len(wrong)} gave an answer other "
            f"than the uncached run's ({rate:.1%})"
        )
        for i in wrong[:3]:
            got, uncached = outcome.outputs[i][:90], base.outputs[i][:90]
            lines.append(f"  - {requests[i].input!r}: got {got!r}, uncached {uncached!r}")
    confused, pairs, examples = offline_false_hits(pool, 0.93)
    lines.append(
        f"- offline, every ordered pair of distinct cases at threshold 0.93: {confused} of {pairs} "
        f"would be served the other case's answer ({confused / pairs:.2%})"
    )
    lines += [f"  - {example}" for example in examples]
    lines += ["", "## Loop overhead, everything on vs off", ""]
    timing = await overhead(args.rounds)
    lines += [
        f"40 unique requests per round (no cache can hit), zero simulated latency, {args.rounds} "
        "interleaved rounds, ms per run: median (min, max)",
        "",
        f"- off: {summary(timing['off'])}",
        f"- all on: {summary(timing['all'])}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
