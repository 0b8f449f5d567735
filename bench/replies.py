"""Reply text extraction over the reply corpus: right, leaked and lost per client and language.

Each case in tests/data/replies/corpus/*.toml names a reply (plain text, an HTML body or a
whole message) and the new text its source expects. A case is right when the extracted
text has the expected lines in order (blank and divider lines and indentation aside; a trailing
signature the source keeps may also be dropped, as maildesk drops signatures); leaked when
it has a line the expected text does not (quoted history relayed); lost when a line of the
expected text is missing. A case can be both leaked and lost.

    .venv/bin/python bench/replies.py              # table per client, per language, total
    .venv/bin/python bench/replies.py --failures   # and each case that is not right
    .venv/bin/python bench/replies.py --json
"""

from __future__ import annotations

import argparse
import inspect
import json
import quopri
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "replies" / "corpus"
TARGET = 0.97


def load_cases(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    """Every case of every manifest in the corpus folder, in file order."""
    cases: list[dict[str, Any]] = []
    for manifest in sorted(corpus.glob("*.toml")):
        cases += tomllib.loads(manifest.read_text(encoding="utf-8"))["case"]
    return cases


def bodies(case: dict[str, Any], corpus: Path = CORPUS) -> tuple[str, str]:
    """(text, html) of a case as the pipeline would see them."""
    from maildesk.parse.bodies import html_to_text
    from maildesk.parse.parser import parse_message

    data = (corpus / case["file"]).read_bytes()
    if case["kind"] == "eml":
        msg = parse_message(data)
        return msg.body_text, msg.body_html
    if case["kind"] == "html":
        html = data.decode("utf-8")
        return html_to_text(html), html
    if case["kind"] == "qp":  # a quoted-printable body, decoded as the MIME layer does
        return quopri.decodestring(data).decode("utf-8"), ""
    return data.decode("utf-8"), ""


def lines_of(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip(" \t_=-")]


def judge(case: dict[str, Any], got: str) -> dict[str, bool]:
    """right / leaked / lost for one case's extracted text."""
    expected = lines_of(case["expected"])
    allowed = [expected]
    signature = lines_of(case.get("signature", ""))
    if signature and expected[-len(signature) :] == signature:
        allowed.append(expected[: -len(signature)])
    out = lines_of(got)
    right = out in allowed
    extra = Counter(out) - Counter(expected)
    missing = Counter(allowed[-1]) - Counter(out)
    return {
        "right": right,
        "leaked": not right and bool(extra),
        "lost": not right and bool(missing),
    }


def run(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    from maildesk.parse.reply import new_text

    takes_html = len(inspect.signature(new_text).parameters) > 1
    results = []
    for case in load_cases(corpus):
        text, html = bodies(case, corpus)
        got = new_text(text, html) if takes_html else new_text(text)
        results.append({**case, "got": got, **judge(case, got)})
    return results


def table(results: list[dict[str, Any]], key: str) -> list[str]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[r[key]].append(r)
    width = max(len(k) for k in groups) + 2
    rows = [f"{key:<{width}}{'cases':>6}{'right':>7}{'leaked':>8}{'lost':>6}"]
    for name in sorted(groups, key=str.lower):
        g = groups[name]
        rows.append(
            f"{name:<{width}}{len(g):>6}{sum(r['right'] for r in g):>7}"
            f"{sum(r['leaked'] for r in g):>8}{sum(r['lost'] for r in g):>6}"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", action="store_true", help="print each case not right")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = run()
    total = len(results)
    right = sum(r["right"] for r in results)
    summary = {
        "cases": total,
        "right": right,
        "leaked": sum(r["leaked"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "right_share": round(right / total, 4) if total else 0.0,
        "clients": len({r["client"] for r in results}),
        "languages": len({r["language"] for r in results}),
        "target": TARGET,
    }
    if args.json:
        print(json.dumps({"summary": summary, "cases": results}, ensure_ascii=False, indent=1))
        return 0
    print("\n".join(table(results, "client")), end="\n\n")
    print("\n".join(table(results, "language")), end="\n\n")
    print(
        f"total: {total} cases, {summary['clients']} clients, {summary['languages']} languages: "
        f"{right} right ({summary['right_share']:.1%}), {summary['leaked']} leaked, "
        f"{summary['lost']} lost (target: {TARGET:.0%} right, none leaked)"
    )
    if args.failures:
        for r in results:
            if not r["right"]:
                flags = ", ".join(k for k in ("leaked", "lost") if r[k])
                print(f"\n--- {r['id']} ({r['client']}, {r['language']}): {flags}")
                if "disagreement" in r:
                    print(f"known: {r['disagreement']}")
                print(f"expected: {r['expected']!r}\n     got: {r['got']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
