"""Cleaning what users paste: shell prompts, bare command lines, ``kubectl apply -f - <<EOF``
heredoc wrappers, markdown fences, and the output of commands ``inspect`` does not read.

Removed lines become empty lines, so every line keeps its number for error messages. The output
of one kind of input is kept (the first readable command decides: ``ss``/``netstat``, ``sysctl``
lines, or manifests/JSON); other commands' output is skipped with a note naming the command.
Helm ``{{ ... }}`` leftovers are refused here, before YAML reads ``{{ .Values.x }}`` as a mapping.
"""

from __future__ import annotations

import re

from sim.errors import ConfigError, one_line

_PROMPT = re.compile(
    r"^\s*(?:\d{1,2}:\d{2}(?::\d{2})?\s+)?"  # a clock some prompts start with (19:47:22 root@vm:~#)
    r"(?:\[[^\]\n]*\]\s*[#$%>]"  # [root@host ~]#
    r"|\(?[\w.-]+\)?\s*[\w.-]*@[\w.-]+(?::[^\s#$]*)?\s*[#$%>]"  # root@pod:/#  user@host:~$  (venv) u@h:~$
    r"|(?:ba|z|da|k)?sh-[\d.]+[#$]"  # bash-5.1$  sh-4.4#
    r"|[$%>])"  # $ cmd
    r"\s+(?=\S)")
#: first words that start a command line even without a prompt
COMMANDS = frozenset((
    "ss", "netstat", "sysctl", "cat", "grep", "egrep", "kubectl", "istioctl", "curl", "wget", "sudo", "nsenter",
    "ip", "ipvsadm", "iptables", "ip6tables", "conntrack", "tcpdump", "echo", "helm", "crictl", "docker", "watch",
    "lsof", "ps", "ls", "ping", "nc", "telnet", "openssl", "envoy", "pilot-agent", "sh", "bash", "oc", "k"))
_WRAPPERS = {"sudo", "watch", "nsenter", "sh", "bash", "k"}
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][\w-]*)\1")
_TEMPLATE = re.compile(r"\{\{-?.*?-?\}\}|\{\{[^}\n]*$")


def check_template_leftovers(text: str, file: str) -> None:
    """A Helm/Go template leftover (``{{ .Values.x }}``) is one clear error, with its line."""
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if s.startswith("#"):
            continue
        m = _TEMPLATE.search(raw)
        if m:
            raise ConfigError(f"Helm template leftover {one_line(m.group(), 60)!r}", file=file, line=n,
                              allowed="rendered YAML: run `helm template` (or your templating tool) first and "
                                      "inspect its output")


def _family(cmd: str) -> str | None:
    """What a command prints: "ss" (ss, netstat), "sysctl", "any" (manifests, JSON, files), or None
    for a command whose output inspect does not read."""
    words = cmd.replace("|", " | ").split()
    while words:
        w = words[0].rsplit("/", 1)[-1]
        if w in ("kubectl", "oc", "k") and "--" in words:  # kubectl exec POD -- CMD
            words = words[words.index("--") + 1:]
            continue
        if w == "ip" and words[1:3] == ["netns", "exec"]:
            words = words[4:]
            continue
        if w in _WRAPPERS:
            words = [x for x in words[1:] if not x.startswith("-") and not x.isdigit()] if w != "sh" else words[1:]
            if w in ("sh", "bash") and words and words[0] == "-c":
                words = words[1:]
            words = [x.strip("'\"") for x in words]
            continue
        break
    if not words:
        return None
    w = words[0].rsplit("/", 1)[-1]
    rest = " ".join(words[1:])
    if w in ("ss", "netstat"):
        return "ss"
    if w == "sysctl" or "/proc/sys/" in rest or "sysctl" in rest and w in ("cat", "grep", "egrep"):
        return "sysctl"
    if w in ("kubectl", "oc", "k"):
        return "any" if re.search(r"\b(get|apply|create|replace|edit)\b", rest) else None
    if w in ("istioctl", "curl", "wget", "cat", "helm", "pilot-agent"):
        return "any"
    return None


def _why(family: str | None) -> str:
    return "a different kind of input (run inspect on it separately)" if family else "not an input inspect reads"


#: any other prompt (``<node> ~ #``, ``root@<pod>:/#``) when a known command follows it
_LOOSE_PROMPT = re.compile(r"^(?P<p>\S[^\n]{0,79}?[#$%>])\s+(?P<cmd>(?P<w>[\w./-]+)(?:\s.*)?)$")


def _command_of(raw: str) -> str | None:
    """The command of a prompt line or a bare command line, else None."""
    m = _PROMPT.match(raw)
    if m:
        return raw[m.end():].strip()
    m = _LOOSE_PROMPT.match(raw)
    if m and m["w"].rsplit("/", 1)[-1] in COMMANDS and not m["p"].lstrip().startswith("#"):
        return m["cmd"].strip()
    s = raw.strip()
    first = s.split(" ", 1)[0]
    if raw[:1].isspace():  # indented: content (a YAML block, a continuation line), never a command
        return None
    if first in COMMANDS and not first.endswith(":") and (" " in s or first in ("ss", "sysctl", "netstat")):
        if re.match(r"^[\w.-]+\s*[:=]", s):  # `cat: x` / `ss = 1`: content, not a command
            return None
        return s
    return None


def clean_paste(text: str) -> tuple[str, list[str]]:
    """(text with prompts, commands, fences, heredoc markers and foreign output blanked, notes)."""
    rows = text.splitlines()
    out = list(rows)
    notes: list[str] = []
    kept_family: str | None = None
    skipping: tuple[str, int, str] | None = None  # (command, first line, why) whose output is skipped
    heredoc: tuple[str, str] | None = None  # (terminator, command)
    skipped: list[tuple[str, int, int, str]] = []

    def end_skip(last: int) -> None:
        nonlocal skipping
        if skipping and last >= skipping[1]:
            skipped.append((skipping[0], skipping[1], last, skipping[2]))
        skipping = None

    for i, raw in enumerate(rows):
        n = i + 1
        if heredoc is not None:
            if raw.strip() == heredoc[0]:
                out[i] = ""
                skipping = (heredoc[1], n + 1, "what kubectl printed, not the manifest")
                heredoc = None
            continue
        if _FENCE.match(raw):  # a fence also ends the output of the command before it
            out[i] = ""
            end_skip(n - 1)
            continue
        cmd = _command_of(raw)
        if cmd is None:
            if skipping:
                out[i] = ""
            continue
        out[i] = ""
        end_skip(n - 1)
        doc = _HEREDOC.search(cmd)
        fam = _family(cmd)
        if doc:
            if fam is None and re.search(r"\b(apply|create|replace)\b", cmd):
                fam = "any"
            if fam is None or kept_family not in (None, "any") and fam not in ("any", kept_family):
                skipping = (cmd, n + 1, _why(fam))
            else:
                heredoc = (doc.group(2), cmd)
                kept_family = kept_family or fam
            continue
        if fam is not None and (kept_family is None or fam == kept_family or "any" in (fam, kept_family)):
            kept_family = kept_family if kept_family not in (None, "any") else fam
            continue
        skipping = (cmd, n + 1, _why(fam))
    end_skip(len(rows))
    for cmd, first, last, why in skipped:
        if all(not r.strip() for r in rows[first - 1:last]):
            continue
        lines = f"line {first}" if first == last else f"lines {first}-{last}"
        notes.append(f"skipped {lines}: the output of `{one_line(cmd, 60)}`, {why}")
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), notes
