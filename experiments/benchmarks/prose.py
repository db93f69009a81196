"""English prose written by people, offline: sentences from the docstrings of Python's standard library.

The labeling bench needs real text for a real model, and nothing here may download a corpus. The standard
library's docstrings are thousands of sentences of edited English (technical, but with ordinary grammar, numbers,
names and punctuation), and they are the same wherever the same Python runs. Sentences are split on sentence
ends, kept when they read as prose (6 to 40 words, mostly letters, no code or doctest lines), de-duplicated, and
drawn in a seeded order.
"""

from __future__ import annotations

import re

# Modules whose docstrings are read, in this order (all in every CPython 3.11 build).
MODULES = (  # noqa: SIM905 (one word per module reads better than 90 quoted lines)
    "argparse asyncio base64 bisect calendar codecs collections concurrent.futures contextlib copy csv dataclasses "
    "datetime decimal difflib email email.message enum fractions ftplib functools gettext glob gzip hashlib heapq "
    "hmac html html.parser http.client http.server imaplib inspect io ipaddress itertools json logging "
    "logging.handlers mailbox mimetypes multiprocessing numbers operator optparse os pathlib pdb pickle pkgutil "
    "platform plistlib poplib pprint queue random re sched secrets selectors shelve shlex shutil smtplib socket "
    "socketserver sqlite3 ssl statistics string struct subprocess tarfile tempfile textwrap threading timeit "
    "tokenize traceback turtle typing unittest urllib.parse urllib.request uuid warnings weakref xml.dom.minidom "
    "xml.etree.ElementTree zipfile zoneinfo"
).split()
_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CODE = re.compile(r">>>|\.\.\.|[{}\[\]=<>`|\\]|\w\(|::|__|\*\*|\.py\b")


def _docstrings() -> list[str]:
    import importlib
    import inspect

    out: list[str] = []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:  # a build without it (e.g. no tkinter for turtle) still has the rest
            continue
        out.append(inspect.getdoc(mod) or "")
        for attr in sorted(vars(mod)):
            obj = getattr(mod, attr)
            if attr.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            out.append(inspect.getdoc(obj) or "")
            if inspect.isclass(obj):
                for meth in sorted(vars(obj)):
                    if not meth.startswith("_"):
                        out.append(inspect.getdoc(getattr(obj, meth, None)) or "")
    return out


def _prose(text: str) -> list[str]:
    """The sentences of one docstring that read as prose."""
    kept = []
    for para in re.split(r"\n\s*\n", text):
        if para.startswith((" ", "\t")):  # an indented block: code or a table
            continue
        for s in _END.split(" ".join(para.split())):
            words = s.split()
            letters = sum(c.isalpha() or c == " " for c in s)
            if 6 <= len(words) <= 40 and s[-1] in ".!?" and letters >= 0.85 * len(s) and not _CODE.search(s):
                kept.append(s)
    return kept


def prose_sentences(n: int, seed: int = 0) -> list[str]:
    """`n` distinct prose sentences in a seeded order; a clear error when the library has fewer."""
    import numpy as np

    from tools.errors import UserError

    pool = sorted({s for doc in _docstrings() for s in _prose(doc)})
    if len(pool) < n:
        raise UserError(f"the standard library's docstrings give {len(pool)} prose sentences, fewer than {n}")
    order = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[int(i)] for i in order]
