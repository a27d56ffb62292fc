"""Meta-prompts: one Jinja2 template per LLM strategy, plus the shared system message.

The user's prompt is always a template *variable*, never template source:
Dify prompts are full of ``{{``. A template's version is the hash of its
source, and it takes part in the cache key, so editing a template never
serves an answer written for the old one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from autoopt.domain.analyzer import PromptAnalysis
from autoopt.domain.text import detect_language

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STRATEGIES = ("llm_guided", "llm_clarity", "llm_efficiency", "hybrid")
_LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "ja": "Japanese",
    "mixed": "as written",
    "none": "as written",
}


class MetaPrompts:
    def __init__(self, folder: Path = TEMPLATES_DIR) -> None:
        self._env = Environment(
            loader=FileSystemLoader(str(folder)),
            autoescape=False,
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )
        sources = [(folder / f"{name}.j2").read_bytes() for name in ("system", *STRATEGIES)]
        self._versions = {
            name: hashlib.sha256(sources[0] + source).hexdigest()[:16]
            for name, source in zip(STRATEGIES, sources[1:], strict=True)
        }

    def version(self, strategy: str) -> str:
        return self._versions[strategy]

    def render(self, strategy: str, prompt: str, analysis: PromptAnalysis) -> list[dict[str, str]]:
        language = _LANGUAGE_NAMES[detect_language(prompt)]
        system = self._env.get_template("system.j2").render(language=language)
        user = self._env.get_template(f"{strategy}.j2").render(
            prompt=prompt,
            issues=analysis.issues,
            suggestions=analysis.suggestions,
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
