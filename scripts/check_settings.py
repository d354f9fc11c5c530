#!/usr/bin/env python3
"""Cross-checks the code, functions/*/function.json and the Terraform (stdlib only).

What it asserts, each failure printed on its own line:

1. Every environment variable the handler code names as a string literal (`"QOTD_*"`, the
   identity settings of each Service Bus connection, `AZURE_CLIENT_ID`) is an application
   setting of the Function App in Terraform (terraform/locals.tf `app_settings`), unless the
   Functions host provides it (FUNCTIONS_CUSTOMHANDLER_PORT).
2. Every Service Bus `connection` named in function.json has its identity-based settings
   (`<name>__fullyQualifiedNamespace`, `__credential` = managedidentity, `__clientId`).
3. Service Bus topics and subscriptions come from function.json by construction: the root
   module reads the files with fileset + jsondecode, passes the derived sets to the
   servicebus module, which creates one entity per element, and no topic name is written
   as a literal anywhere in terraform/ (never listed twice).
4. Both hosting options receive the same `app_settings` map, and QOTD_DEV_ISSUER is "false".
5. Every `QOTD_*` app setting in Terraform is read by the code, or is listed in PLANNED (a
   setting another change is about to read: reported as a warning, not a failure). A setting
   nobody reads is usually a typo of one somebody does.
6. Every `%NAME%` app-setting reference in function.json (e.g. the DispatchOutbox schedule
   "%QOTD_DISPATCH_SCHEDULE%") is an app setting in Terraform and in both local profiles: the
   host refuses to index a function whose `%NAME%` it cannot resolve.
7. The local profiles:
   - local.settings.json.example runs `func start` with no Azure service: custom runtime,
     Azurite storage, the dev issuer, SQLite, every Service Bus trigger function disabled with
     `AzureWebJobs.<Function>.Disabled` and no Service Bus connection setting (one would switch
     qotd from the in-process bus to Service Bus);
   - local.settings.azure.json.example names every setting the code reads (except the
     managed-identity ones, unused with the developer-tools credential).

Usage: python3 scripts/check_settings.py [--repo PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# Settings the Functions host itself gives the handler process.
HOST_PROVIDED = {
    "FUNCTIONS_CUSTOMHANDLER_PORT": "set by the Functions host when it starts the handler",
}
IDENTITY_SUFFIXES = ("__fullyQualifiedNamespace", "__credential", "__clientId")

# App settings Terraform already provides that the code does not read yet, with the change that
# will read them. Each is reported as a warning until the code names it; then it must leave
# this list (the script says so).
PLANNED: dict[str, str] = {}

# Read only by `qotd local`'s stand-in host, which never runs in Azure.
LOCAL_ONLY = {
    "QOTD_LOCAL_TIMERS": "turns off the stand-in host's timers (tests)",
}

# App settings Terraform sets for the Functions host itself (function.json `%NAME%`), not for
# qotd; each must be referenced by some function.json (a warning until the reference lands).
HOST_READ = {
    "QOTD_DISPATCH_SCHEDULE": "functions/DispatchOutbox/function.json \"schedule\": \"%QOTD_DISPATCH_SCHEDULE%\"",
}

# Settings the Functions host reads from function.json `%NAME%` references, never the code.
HOST_REFERENCE = re.compile(r"%([A-Za-z_][A-Za-z0-9_.]*)%")

# Read by the code, but meaningless with QOTD_AZURE_CREDENTIAL=developertools (the Azure
# local profile signs in as the developer, not as a managed identity).
MANAGED_IDENTITY_ONLY = {"AZURE_CLIENT_ID"}


class HclBlockError(Exception):
    pass


def _skip_string(text: str, i: int) -> int:
    """`text[i]` is an opening quote; returns the index after the closing quote.

    Handles escapes and `${ ... }` / `%{ ... }` templates, which may hold quoted strings.
    """
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c in "$%" and text.startswith("{", i + 1):
            i = _skip_braces(text, i + 1)
            continue
        i += 1
    raise HclBlockError("unterminated string")


def _skip_braces(text: str, i: int) -> int:
    """`text[i]` is `{`; returns the index after its matching `}` (strings/comments aware)."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c == "#" or text.startswith("//", i):
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        if text.startswith("<<", i):
            m = re.match(r"<<-?([A-Za-z_][A-Za-z0-9_]*)\n", text[i:])
            if m:
                end = re.search(r"\n\s*" + re.escape(m.group(1)) + r"\b", text[i + m.end() - 1 :])
                if not end:
                    raise HclBlockError("unterminated heredoc")
                i = i + m.end() - 1 + end.end()
                continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise HclBlockError("unbalanced braces")


def _skip_group(text: str, i: int) -> int:
    """`text[i]` opens a (), [] or {} group; returns the index after its closer."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[i]]]
    i += 1
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _skip_string(text, i)
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c == stack[-1]:
            stack.pop()
            if not stack:
                return i + 1
        i += 1
    raise HclBlockError("unbalanced brackets")


def find_object(text: str, attribute: str) -> str:
    """Body of the first `<attribute> = { ... }` object in `text` (without the braces)."""
    m = re.search(r"(?m)^\s*" + re.escape(attribute) + r"\s*=\s*\{", text)
    if not m:
        raise HclBlockError(f"no `{attribute} = {{` found")
    start = m.end() - 1
    end = _skip_braces(text, start)
    return text[start + 1 : end - 1]


def find_block(text: str, header: str) -> str:
    """Body of the first block whose header line matches the regex `header`."""
    m = re.search(header + r"\s*\{", text)
    if not m:
        raise HclBlockError(f"no block matching {header!r}")
    start = m.end() - 1
    return text[start + 1 : _skip_braces(text, start) - 1]


def top_level_entries(body: str) -> dict[str, str]:
    """`key = value` pairs at the top level of an object body (value text as written)."""
    entries: dict[str, str] = {}
    i = 0
    while i < len(body):
        c = body[i]
        if c in " \t\r\n,":
            i += 1
            continue
        if c == "#" or body.startswith("//", i):
            nl = body.find("\n", i)
            i = len(body) if nl < 0 else nl
            continue
        m = re.match(r'("(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_-]*)\s*=(?!=)\s*', body[i:])
        if not m:
            raise HclBlockError(f"cannot read an entry at: {body[i:i + 40]!r}")
        key = m.group(1).strip('"')
        j = i + m.end()
        k = j
        # The value runs to the end of the line, past any strings or brackets it opens.
        while k < len(body) and body[k] != "\n":
            if body[k] == '"':
                k = _skip_string(body, k)
            elif body[k] in "{[(":
                k = _skip_group(body, k)
            elif body[k] == "#" or body.startswith("//", k):
                break
            else:
                k += 1
        entries[key] = body[j:k].strip()
        i = k
    return entries


def code_settings(handlers: Path, connections: set[str]) -> dict[str, str]:
    """Setting name => where the code first names it (file:line)."""
    patterns = [re.compile(r'"(QOTD_[A-Z0-9_]+)"'), re.compile(r'"(AZURE_CLIENT_ID)"')]
    for conn in sorted(connections):
        patterns.append(re.compile(r'"(' + re.escape(conn) + r'__[A-Za-z]+)"'))
    found: dict[str, str] = {}
    for path in sorted(handlers.rglob("*.rs")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern in patterns:
                for name in pattern.findall(line):
                    found.setdefault(name, f"{path}:{lineno}")
    return found


def function_manifests(functions: Path) -> dict[str, dict]:
    manifests = {}
    for path in sorted(functions.glob("*/function.json")):
        manifests[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
    return manifests


def host_references(manifests: dict[str, dict]) -> dict[str, str]:
    """`%NAME%` references in any binding value => the function that makes them."""
    refs: dict[str, str] = {}

    def walk(value, function_name: str) -> None:
        if isinstance(value, str):
            for name in HOST_REFERENCE.findall(value):
                refs.setdefault(name, function_name)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v, function_name)
        elif isinstance(value, list):
            for v in value:
                walk(v, function_name)

    for name, manifest in manifests.items():
        walk(manifest.get("bindings", []), name)
    return refs


def local_profile(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    values = data.get("Values", {})
    return {k: str(v) for k, v in values.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    repo: Path = args.repo
    tf = repo / "terraform"
    problems: list[str] = []

    # ---- function.json: connections, topics, subscriptions ----
    manifests = function_manifests(repo / "functions")
    if not manifests:
        problems.append("no functions/*/function.json found")
    connections: set[str] = set()
    topics: set[str] = set()
    subscriptions: set[tuple[str, str]] = set()
    for name, manifest in manifests.items():
        for binding in manifest.get("bindings", []):
            kind = binding.get("type")
            if kind in ("serviceBusTrigger", "serviceBus"):
                if binding.get("connection"):
                    connections.add(binding["connection"])
                if binding.get("topicName"):
                    topics.add(binding["topicName"])
                if kind == "serviceBusTrigger" and binding.get("topicName"):
                    subscriptions.add((binding["topicName"], binding.get("subscriptionName", "")))
                if binding.get("queueName"):
                    problems.append(f"{name}: queue bindings are not provisioned by terraform/modules/servicebus (only topics)")

    # ---- Terraform app settings ----
    locals_tf = (tf / "locals.tf").read_text(encoding="utf-8")
    try:
        settings = top_level_entries(find_object(locals_tf, "app_settings"))
    except HclBlockError as e:
        print(f"check_settings: cannot read app_settings in terraform/locals.tf: {e}")
        return 1

    # 1. settings the code reads
    read = code_settings(repo / "handlers", connections)
    for name, where in sorted(read.items()):
        if name in HOST_PROVIDED or name in LOCAL_ONLY:
            continue
        if name not in settings:
            problems.append(f"missing app setting: {name} (read at {where.removeprefix(str(repo) + '/')}) is not in terraform/locals.tf app_settings")

    # 2. identity-based Service Bus connections
    for conn in sorted(connections):
        for suffix in IDENTITY_SUFFIXES:
            if conn + suffix not in settings:
                problems.append(f"missing app setting: {conn}{suffix} (function.json connection \"{conn}\")")
        credential = settings.get(conn + "__credential")
        if credential is not None and credential != '"managedidentity"':
            problems.append(f"{conn}__credential must be \"managedidentity\", is {credential}")

    # 5. Terraform settings nobody reads (typos), except the planned ones
    warnings: list[str] = []
    for name in sorted(settings):
        if not name.startswith("QOTD_") or name in read or name in HOST_READ:
            continue
        if name in PLANNED:
            warnings.append(f"planned setting {name} is set by Terraform but not read by handlers/ yet ({PLANNED[name]})")
        else:
            problems.append(f"app setting {name} in terraform/locals.tf is read by nothing in handlers/ (a typo? if a change is about to read it, add it to PLANNED in scripts/check_settings.py)")
    for name in sorted(PLANNED):
        if name in read:
            warnings.append(f"{name} is read by the code now ({read[name].removeprefix(str(repo) + '/')}): remove it from PLANNED in scripts/check_settings.py")

    # 6. %NAME% references resolved by the host
    refs = host_references(manifests)
    for name, what in sorted(HOST_READ.items()):
        if name not in refs:
            warnings.append(f"{name} is set for the host but no function.json refers to %{name}% yet (expected: {what})")
    for name, function_name in sorted(refs.items()):
        if name not in settings:
            problems.append(f"missing app setting: {name} (functions/{function_name}/function.json refers to %{name}%) is not in terraform/locals.tf app_settings")

    # 7. local profiles
    sb_triggers = sorted(
        name
        for name, manifest in manifests.items()
        if any(b.get("type") == "serviceBusTrigger" for b in manifest.get("bindings", []))
    )
    local = local_profile(repo / "local.settings.json.example")
    if local is None:
        problems.append("local.settings.json.example is missing (the func start profile)")
    else:
        expected = {
            "FUNCTIONS_WORKER_RUNTIME": "custom",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "QOTD_DEV_ISSUER": "true",
        }
        for key, value in expected.items():
            if local.get(key) != value:
                problems.append(f"local.settings.json.example: {key} must be \"{value}\", is {local.get(key)!r}")
        if not local.get("QOTD_DATABASE_URL", "").startswith("sqlite:"):
            problems.append("local.settings.json.example: QOTD_DATABASE_URL must be a sqlite:// URL (no Azure SQL in the local profile)")
        for function_name in sb_triggers:
            key = f"AzureWebJobs.{function_name}.Disabled"
            if local.get(key, "").lower() != "true":
                problems.append(f"local.settings.json.example: {key} must be \"true\" (events go through the in-process bus locally)")
        for key in sorted(local):
            m = re.match(r"AzureWebJobs\.(.+)\.Disabled$", key)
            if m and m.group(1) not in manifests:
                problems.append(f"local.settings.json.example: {key} names no function in functions/")
        for conn in sorted(connections):
            for key in sorted(local):
                if key == conn or key.startswith(conn + "__"):
                    problems.append(f"local.settings.json.example: {key} would switch qotd from the in-process bus to Service Bus; leave Service Bus out of the local profile")
        for name, function_name in sorted(refs.items()):
            if name not in local:
                problems.append(f"local.settings.json.example: {name} is missing (functions/{function_name}/function.json refers to %{name}%)")

    azure = local_profile(repo / "local.settings.azure.json.example")
    if azure is None:
        problems.append("local.settings.azure.json.example is missing (the complete Azure profile)")
    else:
        managed_only = MANAGED_IDENTITY_ONLY | {c + s for c in connections for s in ("__credential", "__clientId")}
        for name, where in sorted(read.items()):
            if name in HOST_PROVIDED or name in managed_only or name in LOCAL_ONLY:
                continue
            if name not in azure:
                problems.append(f"local.settings.azure.json.example: {name} (read at {where.removeprefix(str(repo) + '/')}) is missing")
        for name in sorted(settings):
            if name.startswith("QOTD_") and name not in azure:
                problems.append(f"local.settings.azure.json.example: {name} (an app setting in Terraform) is missing")
        for name, function_name in sorted(refs.items()):
            if name not in azure:
                problems.append(f"local.settings.azure.json.example: {name} is missing (functions/{function_name}/function.json refers to %{name}%)")

    # 4. dev issuer off in Azure
    if settings.get("QOTD_DEV_ISSUER") != '"false"':
        problems.append(f"QOTD_DEV_ISSUER must be \"false\" in Azure, is {settings.get('QOTD_DEV_ISSUER')}")

    # 3. topics and subscriptions derived from function.json, never listed
    derivation = [
        (r'fileset\(\s*local\.functions_dir\s*,\s*"\*/function\.json"\s*\)', "fileset over */function.json"),
        (r"jsondecode\(\s*file\(", "jsondecode(file(...))"),
        (r'"serviceBusTrigger"', "a filter on serviceBusTrigger bindings"),
        (r"\.topicName\b", "topicName"),
        (r"\.subscriptionName\b", "subscriptionName"),
        (r'"\$\{path\.root\}/\.\./functions"', "the default functions folder ${path.root}/../functions"),
    ]
    for pattern, what in derivation:
        if not re.search(pattern, locals_tf):
            problems.append(f"terraform/locals.tf does not derive Service Bus entities from function.json: {what} not found")

    main_tf = (tf / "main.tf").read_text(encoding="utf-8")
    try:
        sb_module = find_block(main_tf, r'module\s+"servicebus"')
        fa_module = find_block(main_tf, r'module\s+"functionapp"')
    except HclBlockError as e:
        problems.append(f"terraform/main.tf: {e}")
        sb_module = fa_module = ""
    for attribute, value in (("topics", "local.servicebus_topics"), ("subscriptions", "local.servicebus_subscriptions")):
        if not re.search(rf"(?m)^\s*{attribute}\s*=\s*{re.escape(value)}\s*$", sb_module):
            problems.append(f'terraform/main.tf module "servicebus" must pass `{attribute} = {value}`')
    if not re.search(r"app_settings\s*=\s*local\.app_settings\b", fa_module):
        problems.append('terraform/main.tf module "functionapp" must pass `app_settings = local.app_settings`')

    sb_main = (tf / "modules/servicebus/main.tf").read_text(encoding="utf-8")
    for resource, source in (("azurerm_servicebus_topic", "var.topics"), ("azurerm_servicebus_subscription", "var.subscriptions")):
        try:
            body = find_block(sb_main, rf'resource\s+"{resource}"\s+"this"')
        except HclBlockError:
            problems.append(f"terraform/modules/servicebus/main.tf has no {resource}.this")
            continue
        if not re.search(rf"for_each\s*=\s*{re.escape(source)}\b", body):
            problems.append(f"{resource}.this must use for_each = {source}")

    literal_hits = []
    for path in sorted(list(tf.rglob("*.tf")) + list(tf.rglob("*.tfvars"))):
        if ".terraform" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for topic in sorted(topics):
            for lineno, line in enumerate(text.splitlines(), 1):
                if f'"{topic}"' in line or f'"{topic}/' in line:
                    literal_hits.append(f"{path.relative_to(repo)}:{lineno}: topic \"{topic}\" written out (derive it from function.json)")
    problems.extend(literal_hits)

    # 4. both hostings get the same map
    fa_main = (tf / "modules/functionapp/main.tf").read_text(encoding="utf-8")
    for pattern, what in (
        (r"for\s+name\s*,\s*value\s+in\s+var\.app_settings", "plain settings derived from var.app_settings"),
        (r"app_settings\s*=\s*local\.flex_app_settings", "the Flex app's app_settings"),
        (r"for_each\s*=\s*local\.container_env", "the container's env"),
    ):
        if not re.search(pattern, fa_main):
            problems.append(f"terraform/modules/functionapp/main.tf: {what} not found")

    print(f"check_settings: {len(read)} setting names read by handlers/ ({', '.join(sorted(read))})")
    print(f"check_settings: {len(settings)} app settings in terraform/locals.tf")
    print(
        f"check_settings: function.json declares {len(topics)} topic(s) {sorted(topics)}, "
        f"{len(subscriptions)} subscription(s) {sorted(f'{t}/{s}' for t, s in subscriptions)}, "
        f"connection(s) {sorted(connections)}; Terraform derives them with fileset + jsondecode"
    )
    if refs:
        print(f"check_settings: function.json refers to app setting(s) {sorted(refs)}")
    for w in warnings:
        print(f"check_settings: WARNING: {w}")
    if problems:
        for p in problems:
            print(f"check_settings: FAIL: {p}")
        print(f"check_settings: {len(problems)} problem(s)")
        return 1
    print("check_settings: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
