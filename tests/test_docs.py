"""The docs cannot go stale silently: their links lead somewhere, the commands they show exist with the flags they
show, and the figures they say the shipped weights store are the ones the shipped pair stores."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import tracker
from tracker.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "weights" / "MODEL_CARD.md"]

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"(?<![\w./-])siamtrack[ \t]+(--?[a-z][a-z-]*|[a-z][a-z-]*)")
# Where a command shown in a code block ends: a shell operator, a comment or the end of the line.
SHELL_END = re.compile(r"&&|\|\||[|;]|\s#")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose(text: str) -> str:
    """The text without fenced code blocks (their `#` lines are comments, their brackets code)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = _slug(match.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(path: Path) -> list[str]:
    prose = INLINE_CODE.sub("", _prose(path.read_text()))
    return [target for target in LINK.findall(prose) if not re.match(r"[a-z][a-z+.-]*:", target)]


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_every_relative_link_leads_to_a_file_and_heading(page):
    broken = []
    for target in _links(page):
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no file {destination}")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {_relative(destination)}")
    assert not broken, f"{_relative(page)}:\n" + "\n".join(broken)


def test_every_image_in_docs_is_shown_somewhere():
    shown = {(page.parent / target).resolve() for page in PAGES for target in _links(page)}
    unlinked = [_relative(image) for image in sorted((ROOT / "docs").glob("*.png")) if image.resolve() not in shown]
    assert not unlinked, f"pictures no page links: {unlinked}"


def _options() -> dict[str, set[str]]:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    options = {name: set(sub._option_string_actions) for name, sub in commands.items()}
    options[""] = set(parser._option_string_actions)  # siamtrack --version
    return options


def _code_commands(text: str) -> list[str]:
    """Every `siamtrack ...` command line in the code blocks and inline code of a page, up to where it ends."""
    shown = []
    for block in FENCE.findall(text):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            shown += [SHELL_END.split(part)[0] for part in re.split(r"(?=\bsiamtrack\s)", line)[1:]]
    for span in INLINE_CODE.findall(_prose(text)):
        shown += [SHELL_END.split(part)[0] for part in re.split(r"(?=\bsiamtrack\s)", span)[1:]]
    return shown


def _unknown_in(shown: str, options: dict[str, set[str]]) -> list[str]:
    match = COMMAND.match(shown)
    if not match:
        return []
    command = "" if match.group(1).startswith("-") else match.group(1)
    if command not in options:
        return [f"`{shown.strip()}`: no command {command!r}"]
    return [f"`{shown.strip()}`: {command or 'siamtrack'} has no {flag}"
            for flag in FLAG.findall(shown) if flag not in options[command]]


def _cli_sections(text: str):
    """(commands, text) per section of docs/cli.md: a `siamtrack CMD` section's flags are CMD's, and the model
    options' section's flags are every command's it names."""
    for section in re.split(r"^(?=## )", _prose(text), flags=re.M)[1:]:
        title = section.splitlines()[0]
        named = re.match(r"## `siamtrack ([a-z-]+)`", title)
        if named:
            yield [named.group(1)], section
        elif title == "## The model options":
            first_line = section.split("\n\n")[1]
            yield re.findall(r"`([a-z-]+)`", first_line), section


def test_every_command_and_flag_shown_exists():
    options = _options()
    unknown = []
    for page in PAGES:
        for shown in _code_commands(page.read_text()):
            unknown += [f"{_relative(page)}: {problem}" for problem in _unknown_in(shown, options)]
    cli = ROOT / "docs" / "cli.md"
    for commands, section in _cli_sections(cli.read_text()):
        for span in INLINE_CODE.findall(section):
            if "siamtrack " in span:
                continue  # checked above
            other = re.match(r"([a-z][a-z-]*)\s", span)
            targets = [other.group(1)] if other and other.group(1) in options else commands
            for command in targets:
                unknown += [f"docs/cli.md, {command}: `{span}` names {flag}, which {command} does not have"
                            for flag in FLAG.findall(span) if flag not in options.get(command, ())]
    assert not unknown, "\n".join(sorted(set(unknown)))


def _stored_table() -> dict[str, str]:
    text = (ROOT / "docs" / "deployment.md").read_text()
    section = text.split("## Stored with the shipped weights", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("|")][2:]
    return {key.strip(): value.strip() for key, value in rows}


def test_the_figures_the_docs_give_for_the_shipped_weights_are_the_stored_ones():
    engine = tracker.load_engine(engine="onnx")
    model, tracking = engine.config, engine.tracker_config
    stored = {
        "precision": "int8" if "quantized" in engine.metadata else "float",
        "search crop": f"{model.search_size} px",
        "exemplar crop": f"{model.exemplar_size} px",
        "crops per frame (`num_scales`)": str(tracking.num_scales),
        "lost threshold (`lost_threshold`)": f"{tracking.lost_threshold:g}",
        "`uncertain_margin` / `redetect_margin`": f"{tracking.uncertain_margin:g} / {tracking.redetect_margin:g}",
        "`lost_after`": str(tracking.lost_after),
        "`fast_lost_threshold` / `fast_lost_after`": f"{tracking.fast_lost_threshold:g} / {tracking.fast_lost_after}",
        "appearance check (`appearance_gate`)": f"{tracking.appearance_gate:g}",
        "a lost search that follows nothing moves after (`redetect_move`)": f"{tracking.redetect_move} frames",
        "a place to take back is also looked at (`redetect_look`)": "on" if tracking.redetect_look else "off",
        "a box that jumps is lost at once (`jump_cosine` / `jump_at_cuts`)":
            "off" if not tracking.jump_cosine else f"{tracking.jump_cosine:g} / " + (
                f"{tracking.jump_at_cuts:g} (at shot cuts only)" if tracking.jump_at_cuts else "0 (on any frame)"),
        "box rule (`box_position`)": tracking.box_position,
    }
    documented = _stored_table()
    assert {"precision", "search crop", "lost threshold (`lost_threshold`)"} <= documented.keys()
    wrong = {key: (value, stored.get(key)) for key, value in documented.items() if value != stored.get(key)}
    assert not wrong, f"docs/deployment.md says (documented, stored): {wrong}"


def _section_blocks(section: str, language: str) -> list[str]:
    """The fenced `language` blocks of the README section headed `## section`."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```", body, re.S | re.M)


@pytest.fixture
def beside_a_checkout(tmp_path):
    """A folder that sees the checkout's demos/ as the quick start does, and no data pack."""
    (tmp_path / "demos").symlink_to(ROOT / "demos")
    return tmp_path


def test_the_quick_start_runs_as_written_without_the_data_pack(beside_a_checkout):
    """README, Track a video: the command runs on the sample clip in the repository and tracks the walker."""
    import csv
    import os
    import subprocess
    import sys

    (command,) = [line for block in _section_blocks("Track a video", "bash") for line in block.splitlines()
                  if line.startswith("siamtrack ")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", command], cwd=beside_a_checkout, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((beside_a_checkout / "out.csv").open()))
    assert len(rows) == 150 and (beside_a_checkout / "out.mp4").stat().st_size > 0
    last = rows[-1]
    x, y, w, h = (float(last[k]) for k in "xywh")
    # The walker's centre in the last frame, read off the frame enlarged 4x: the box still holds her. It has grown
    # over the man in the red jacket who crossed in front of her at frame 125 (docs/lost-and-found.md, "A box
    # that jumps"); a box on him alone (his centre is near 229, 194) leaves her out.
    walker = (208, 148)
    assert x <= walker[0] <= x + w and y <= walker[1] <= y + h and last["state"] != "lost", last


def test_the_python_api_example_runs_as_written(beside_a_checkout):
    import subprocess
    import sys

    (code,) = _section_blocks("Python API", "python")
    done = subprocess.run([sys.executable, "-c", code], cwd=beside_a_checkout, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 149 and all(line.endswith(("tracking", "uncertain", "lost")) for line in lines)
