#!/usr/bin/env python3
"""What no schema checks in deploy/: the files agree with each other and with the code.

    python3 scripts/deploy/check-consistency.py RENDERED_KUSTOMIZATION.yaml

Run by scripts/lint-deploy.sh (with the tools venv's python, for PyYAML) on the output of
`kubectl kustomize deploy/kubernetes`. Checks:
- the stop timeouts (systemd TimeoutStopSec, Kubernetes terminationGracePeriodSeconds) exceed
  http.shutdown_delay + http.shutdown_grace + 2 x database.acquire_timeout, the longest a
  clean stop takes (defaults from config/tokenauth.toml, overridden by the env they set);
- the Deployment's contract: 65532, read-only root, no capabilities, probes on /healthz and
  /readyz, migrations off at start, the database URL read from the mounted Secret;
- the Services and the PodDisruptionBudget select the Deployment's pods, on ports it has;
- every manifest in deploy/kubernetes is in the kustomization (but the Secret example);
- every tokenauth_* metric the alert rules use is one src/metrics/mod.rs registers (or
  tokenauth_build_info), so a renamed metric cannot leave an alert silently matching nothing.
Prints one line per problem and exits 1 if there is any.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/kubernetes"
problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)


def seconds(text: str) -> float:
    """A humantime or systemd duration of the simple kinds used here: 5s, 30s, 1m, 1min, 500ms."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total, rest = 0.0, str(text).replace(" ", "")
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)([a-z]*)", rest):
        if unit not in units and unit != "":
            raise ValueError(f"unsupported duration {text!r}")
        total += float(number) * units.get(unit, 1)
    return total


def config_default(section: str, key: str, fallback: str) -> str:
    """A default from config/tokenauth.toml (tomllib: Python >= 3.11), or the fallback."""
    try:
        import tomllib

        with open(ROOT / "config/tokenauth.toml", "rb") as f:
            return str(tomllib.load(f).get(section, {}).get(key, fallback))
    except ModuleNotFoundError:
        m = re.search(rf"^\[{section}\][^\[]*?^{key}\s*=\s*\"([^\"]+)\"",
                      (ROOT / "config/tokenauth.toml").read_text(), re.M | re.S)
        return m.group(1) if m else fallback


# why a fallback for shutdown_delay: it is being added to the configuration; 5s is its default.
DEFAULTS = {
    "TOKENAUTH_HTTP__SHUTDOWN_DELAY": config_default("http", "shutdown_delay", "5s"),
    "TOKENAUTH_HTTP__SHUTDOWN_GRACE": config_default("http", "shutdown_grace", "30s"),
    "TOKENAUTH_DATABASE__ACQUIRE_TIMEOUT": config_default("database", "acquire_timeout", "5s"),
}


def stop_budget(env: dict[str, str]) -> float:
    def get(name: str) -> float:
        return seconds(env.get(name, DEFAULTS[name]))

    return (get("TOKENAUTH_HTTP__SHUTDOWN_DELAY") + get("TOKENAUTH_HTTP__SHUTDOWN_GRACE")
            + 2 * get("TOKENAUTH_DATABASE__ACQUIRE_TIMEOUT"))


def check_systemd() -> None:
    unit = (ROOT / "deploy/systemd/tokenauth.service").read_text()
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    env = {}
    for value in settings.get("Environment", []):
        name, _, val = value.partition("=")
        env[name] = val
    stop = seconds(settings.get("TimeoutStopSec", ["90s"])[-1])
    if stop <= stop_budget(env):
        problem(f"systemd: TimeoutStopSec={stop:g}s does not exceed delay + grace + 2 x acquire "
                f"= {stop_budget(env):g}s")
    expect = {
        "Type": "exec", "KillSignal": "SIGTERM", "Restart": "on-failure",
        "ExecStart": "/usr/local/bin/tokenauth serve", "CapabilityBoundingSet": "",
        "WorkingDirectory": "%S/tokenauth", "StateDirectory": "tokenauth",
    }
    for key, want in expect.items():
        if settings.get(key, [None])[-1] != want:
            problem(f"systemd: {key}= is {settings.get(key)}, expected {want!r}")
    if env.get("TOKENAUTH_DATABASE_URL_FILE") != "%d/database_url" or not any(
            v.startswith("database_url:") for v in settings.get("LoadCredential", [])):
        problem("systemd: the database URL must come from LoadCredential=database_url:... "
                "through TOKENAUTH_DATABASE_URL_FILE=%d/database_url")


def pod_labels(spec: dict) -> dict:
    return spec["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(rendered: Path) -> None:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    missing_kinds = [k for k in ("Deployment", "Service", "PodDisruptionBudget", "Job") if k not in by_kind]
    for kind in missing_kinds:
        problem(f"kubernetes: the kustomization renders no {kind}")
    if missing_kinds:
        return
    dep = by_kind["Deployment"][0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = pod_labels(spec)
    if spec.get("replicas") != 2:
        problem(f"kubernetes: Deployment replicas is {spec.get('replicas')}, expected 2")
    if not selects(spec["selector"]["matchLabels"], labels):
        problem("kubernetes: the Deployment's selector does not match its own pods")
    (container,) = [c for c in pod["containers"] if c["name"] == "tokenauth"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= stop_budget(env):
        problem(f"kubernetes: terminationGracePeriodSeconds={grace} does not exceed delay + grace "
                f"+ 2 x acquire = {stop_budget(env):g}s")
    if env.get("TOKENAUTH_DATABASE__MIGRATE_ON_START") != "false":
        problem("kubernetes: the Deployment must set TOKENAUTH_DATABASE__MIGRATE_ON_START=false "
                "(the Job migrates)")
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    for what, ok in {
        "runAsUser 65532": psc.get("runAsUser") == 65532 and psc.get("runAsGroup") == 65532,
        "runAsNonRoot": psc.get("runAsNonRoot") is True,
        "seccomp RuntimeDefault": psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": csc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": csc.get("capabilities", {}).get("drop") == ["ALL"],
        "readiness on /readyz": container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
        "liveness on /healthz": container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
        "enableServiceLinks false": pod.get("enableServiceLinks") is False,
    }.items():
        if not ok:
            problem(f"kubernetes: the Deployment lacks {what}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        port = container.get(probe, {}).get("httpGet", {}).get("port")
        if isinstance(port, str) and port not in ports:
            problem(f"kubernetes: the {probe} uses port {port!r}, which the container does not name")
    metrics_bind = env.get("TOKENAUTH_METRICS_BIND", "")
    if "metrics" in ports and not metrics_bind.endswith(f":{ports['metrics']}"):
        problem(f"kubernetes: TOKENAUTH_METRICS_BIND={metrics_bind!r} is not the metrics port {ports['metrics']}")

    # The Secret: mounted where the *_FILE variables point, with the keys they name.
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    for workload in (dep, *by_kind["Job"]):
        wpod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in wpod.get("volumes", [])}
        for c in wpod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            for e in c.get("env", []):
                if not e["name"].endswith("_FILE"):
                    continue
                directory, _, key = e["value"].rpartition("/")
                volume = volumes.get(mounts.get(directory, ""), {})
                secret = volume.get("secret", {}).get("secretName")
                if secret != example["metadata"]["name"]:
                    problem(f"kubernetes: {workload['kind']} {e['name']}={e['value']} is not in the "
                            f"mounted Secret {example['metadata']['name']!r}")
                elif key not in example.get("stringData", {}):
                    problem(f"kubernetes: {workload['kind']} reads {key!r}, which secret.example.yaml lacks")
    job = by_kind["Job"][0]
    jc = job["spec"]["template"]["spec"]["containers"][0]
    if jc.get("args") != ["migrate"] or jc.get("image") != container.get("image"):
        problem("kubernetes: the Job must run `migrate` with the Deployment's image")

    for svc in by_kind["Service"]:
        if not selects(svc["spec"]["selector"], labels):
            problem(f"kubernetes: Service {svc['metadata']['name']} does not select the Deployment's pods")
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in ports:
                problem(f"kubernetes: Service {svc['metadata']['name']} targets port {p['targetPort']!r}, "
                        f"which the container does not name")
    for pdb in by_kind["PodDisruptionBudget"]:
        if not selects(pdb["spec"]["selector"]["matchLabels"], labels):
            problem("kubernetes: the PodDisruptionBudget does not select the Deployment's pods")

    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    for missing in sorted(present - listed):
        problem(f"kubernetes: {missing} is not listed in kustomization.yaml")
    if "secret.example.yaml" in listed:
        problem("kubernetes: secret.example.yaml must not be in the kustomization (it would "
                "overwrite the real Secret with the placeholder)")


def check_prometheus() -> None:
    source = (ROOT / "src/metrics/mod.rs").read_text()
    m = re.search(r'sub_registry_with_prefix\("([a-z_]+)"\)', source)
    prefix = f"{m.group(1)}_" if m else ""
    registered = {prefix + name for name in re.findall(r'\.register\(\s*"([a-z_]+)"', source)}
    if not registered:
        problem("prometheus: found no metric registered in src/metrics/mod.rs")
        return
    rules = yaml.safe_load((ROOT / "deploy/prometheus/tokenauth.rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for used in set(re.findall(r"\b(tokenauth_[a-z_]+)", rule["expr"])):
                base = re.sub(r"_(total|bucket|sum|count)$", "", used)
                if used not in registered and base not in registered:
                    problem(f"prometheus: {rule.get('alert')} uses {used}, which src/metrics/mod.rs "
                            f"does not register")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    check_systemd()
    check_kubernetes(Path(sys.argv[1]))
    check_prometheus()
    for p in problems:
        print(f"check-consistency: {p}", file=sys.stderr)
    if problems:
        return 1
    print("deploy/ files agree with each other and with src/metrics/mod.rs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
