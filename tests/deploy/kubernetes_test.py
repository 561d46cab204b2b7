#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes/ (no cluster, no server needed).

    kubernetes_test.py [--sluice build/sluice] [--write-configmap]

  1. every document of every manifest validates against the Kubernetes OpenAPI schema of a
     pinned release, strictly (unknown fields are errors), with the `kubernetes-validate`
     package; and a copy with a misspelt field or a wrong type is rejected (the check can fail);
  2. the pipeline ConfigMap holds examples/recruitment.toml unchanged (`--write-configmap`
     refreshes it);
  3. the pieces fit: the pipeline path in the container's args is the ConfigMap's mount and key;
     SLUICE_MYSQL_PASSWORD_FILE is the Secret's mount and key; the probes and the Prometheus
     annotations use the port `--http` listens on, with /healthz and /readyz; selectors match
     the pod labels; the HPA scales the Deployment on a metric of sluice's metrics contract that
     the adapter rules serve; the grace period outlasts shutdown_timeout; the image tag is the
     project's version and the Dockerfile installs the .deb CPack names;
  4. `sluice validate` accepts the ConfigMap's pipeline with the Deployment's environment (the
     installed examples path mapped to this checkout's examples/, a scratch password file).

Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure. Without the
kubernetes-validate package (requirements.txt; `make deps` installs it): exit 77 (skipped), or
a failure under CI=true.
"""

import argparse
import copy
import glob
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import grafana_model as gm  # noqa: E402
import harness  # noqa: E402

REPO = harness.REPO
K8S = os.path.join(REPO, "deploy", "kubernetes")
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
# The Kubernetes release whose schema the manifests must satisfy.
KUBERNETES_VERSION = "1.30.0"
# Where the .deb installs the examples (CPack's /usr prefix).
INSTALLED_EXAMPLES = "/usr/share/sluice/examples"

try:
    import yaml
    import kubernetes_validate
except ImportError as e:  # depends on the venv
    yaml = kubernetes_validate = None
    MISSING = f"{e} (install requirements.txt into the venv: make deps)"


def load_manifests():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((os.path.basename(path), doc))
    return docs


def schema_errors(doc):
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return None
    except kubernetes_validate.ValidationError as e:
        return f"{e.message} at {'/'.join(str(p) for p in e.path)}"
    except Exception as e:  # unknown kind/version, broken schema
        return f"{type(e).__name__}: {e}"


def check_schema(t, docs):
    problems = []
    for name, doc in docs:
        err = schema_errors(doc)
        if err:
            problems.append(f"{name} {doc.get('kind')}: {err}")
    t.result(f"{len(docs)} manifests validate against the Kubernetes {KUBERNETES_VERSION} schema "
             "(strict)", problems)

    # The same check must reject a broken copy, or it proves nothing.
    dep = copy.deepcopy(by_kind(docs, "Deployment"))
    dep["spec"]["replica"] = dep["spec"].pop("replicas")
    hpa = copy.deepcopy(by_kind(docs, "HorizontalPodAutoscaler"))
    hpa["spec"]["maxReplicas"] = "four"
    probe = copy.deepcopy(by_kind(docs, "Deployment"))
    probe["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pat"] = "/x"
    problems = [f"a broken copy ({what}) validates" for what, d in
                (("spec.replica", dep), ("maxReplicas: 'four'", hpa), ("httpGet.pat", probe))
                if schema_errors(d) is None]
    t.result("broken copies (misspelt field, wrong type) are rejected", problems)


def by_kind(docs, kind, name=None):
    found = [d for _, d in docs
             if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise SystemExit(f"FAIL expected one {kind} {name or ''} in deploy/kubernetes, "
                         f"found {len(found)}")
    return found[0]


def pipeline_configmap(docs):
    dep = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if "configMap" in v)
    return by_kind(docs, "ConfigMap", vol["configMap"]["name"])


def check_configmap(t, docs):
    cm = pipeline_configmap(docs)
    with open(PIPELINE) as f:
        want = f.read()
    got = cm["data"].get("recruitment.toml")
    problems = []
    if got != want:
        problems.append("configmap.yaml's recruitment.toml differs from examples/recruitment.toml; "
                        "refresh: python3 tests/deploy/kubernetes_test.py --write-configmap")
    t.result("the pipeline ConfigMap is examples/recruitment.toml", problems)


def write_configmap():
    path = os.path.join(K8S, "configmap.yaml")
    with open(path) as f:
        text = f.read()
    head = text[:text.index("  recruitment.toml: |\n") + len("  recruitment.toml: |\n")]
    with open(PIPELINE) as f:
        body = "".join(("    " + line) if line.strip() else "\n" for line in f)
    with open(path, "w") as f:
        f.write(head + body)
    print(f"wrote {path}")


def container(docs):
    return by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def mount_of(docs, volume_kind):
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if volume_kind in v)
    m = next(m for m in container(docs)["volumeMounts"] if m["name"] == vol["name"])
    return vol, m["mountPath"]


def parse_duration_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return int(m.group(1)) * scale[m.group(2)]


def check_wiring(t, docs):
    problems = []
    dep = by_kind(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
    c = container(docs)
    args = c["args"]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}

    def subset(sel, what):
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            problems.append(f"{what} {sel} does not select the pod labels {pod_labels}")

    subset(dep["spec"]["selector"]["matchLabels"], "the Deployment's selector")
    subset(by_kind(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
           "the PodDisruptionBudget's selector")

    # The pipeline file: args name <configmap mount>/<key>.
    vol, path = mount_of(docs, "configMap")
    cm = by_kind(docs, "ConfigMap", vol["configMap"]["name"])
    if args[:2] != ["run", f"{path}/{next(iter(cm['data']))}"]:
        problems.append(f"args {args[:2]} do not run the ConfigMap's file under {path}")

    # The password: SLUICE_MYSQL_PASSWORD_FILE is <secret mount>/<key>.
    vol, path = mount_of(docs, "secret")
    secret = by_kind(docs, "Secret", vol["secret"]["secretName"])
    keys = list(secret.get("stringData", {})) + list(secret.get("data", {}))
    if env.get("SLUICE_MYSQL_PASSWORD_FILE") not in [f"{path}/{k}" for k in keys]:
        problems.append(f"SLUICE_MYSQL_PASSWORD_FILE={env.get('SLUICE_MYSQL_PASSWORD_FILE')} is "
                        f"not a key of Secret {secret['metadata']['name']} mounted at {path}")
    authority = env.get("SINK", "").split("//", 1)[-1].split("/", 1)[0]
    if any("password" in a.lower() for a in args) or ":" in authority.split("@")[0] and "@" in authority:
        problems.append("a password on the command line or in the sink URI")

    # The HTTP port: --http HOST:PORT, the container port, the probes, the scrape annotations.
    http = args[args.index("--http") + 1] if "--http" in args else ""
    port = int(http.rsplit(":", 1)[1]) if ":" in http else None
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if port is None or port not in ports.values():
        problems.append(f"--http {http!r} is not a declared containerPort {ports}")
    for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        p = get.get("port")
        if get.get("path") != want or ports.get(p, p) != port:
            problems.append(f"{probe} is {get}, want {want} on port {port}")
    if (annotations.get("prometheus.io/scrape") != "true"
            or annotations.get("prometheus.io/port") != str(port)
            or annotations.get("prometheus.io/path") != "/metrics"):
        problems.append(f"Prometheus annotations {annotations} do not scrape :{port}/metrics")

    # Shutdown: the grace period outlasts the pipeline's drain bound.
    m = re.search(r'^shutdown_timeout\s*=\s*"([^"]+)"', cm["data"][next(iter(cm["data"]))], re.M)
    drain = parse_duration_seconds(m.group(1)) if m else 30
    grace = dep["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace <= drain:
        problems.append(f"terminationGracePeriodSeconds {grace} <= shutdown_timeout {drain}s")

    # Autoscaling: the HPA scales this Deployment on a contract metric the adapter serves.
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    if (ref["kind"], ref["name"]) != ("Deployment", dep["metadata"]["name"]):
        problems.append(f"the HPA scales {ref}, not the Deployment")
    rules_cm = by_kind(docs, "ConfigMap", "sluice-prometheus-adapter-rules")
    rules = yaml.safe_load(rules_cm["data"]["config.yaml"])
    served = {r["name"]["as"]: r for r in rules.get("externalRules", [])}
    for metric in hpa["spec"]["metrics"]:
        ext = metric.get("external", {}).get("metric", {})
        name = ext.get("name")
        if name not in gm.CONTRACT:
            problems.append(f"HPA metric {name} is not in sluice's metrics contract")
        if name not in served or name not in served[name]["seriesQuery"]:
            problems.append(f"HPA metric {name} is not served by the adapter rules")
        for label in ext.get("selector", {}).get("matchLabels", {}):
            if label not in gm.CONTRACT.get(name, set()):
                problems.append(f"HPA selector label {label} is not a label of {name}")

    # The image: tag = project version; the Dockerfile installs CPack's .deb into /usr.
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        version = re.search(r"project\(sluice VERSION ([\d.]+)", f.read()).group(1)
    if c["image"] != f"sluice:{version}":
        problems.append(f"image {c['image']} is not sluice:{version}")
    with open(os.path.join(K8S, "Dockerfile")) as f:
        dockerfile = f.read()
    deb = f"sluice_{version}_amd64.deb"
    copied = re.search(r"^COPY (\S+)", dockerfile, re.M)
    if not copied or not re.fullmatch(copied.group(1).replace(".", r"\.").replace("*", ".*"), deb):
        problems.append(f"the Dockerfile does not COPY the .deb CPack writes ({deb})")
    if 'ENTRYPOINT ["/usr/bin/sluice"]' not in dockerfile:
        problems.append("the Dockerfile's entry point is not the .deb's /usr/bin/sluice")
    if f"-t sluice:{version}" not in dockerfile:
        problems.append(f"the Dockerfile's build command does not tag sluice:{version}")
    if not env.get("JOBS", "").startswith(INSTALLED_EXAMPLES + "/"):
        problems.append(f"JOBS={env.get('JOBS')} is not under the installed {INSTALLED_EXAMPLES}")
    t.result("the manifests fit together (mounts, ports, probes, scraping, scaling, image)",
             problems)


def check_validate(t, docs, sluice):
    cm = pipeline_configmap(docs)
    name, text = next(iter(cm["data"].items()))
    env_list = container(docs).get("env", [])
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = os.path.join(tmp, name)
        with open(pipeline, "w") as f:
            f.write(text)
        password = os.path.join(tmp, "password")
        with open(password, "w") as f:
            f.write("scratch\n")
        env = {k: v for k, v in os.environ.items() if k not in ("TRACKING", "SINK", "JOBS")}
        for e in env_list:
            value = e["value"].replace(INSTALLED_EXAMPLES, os.path.join(REPO, "examples"))
            env[e["name"]] = value
        env["SLUICE_MYSQL_PASSWORD_FILE"] = password
        r = subprocess.run([os.path.abspath(sluice), "validate", pipeline], cwd=tmp, env=env, text=True,
                           capture_output=True, timeout=120)
    problems = []
    if r.returncode != 0:
        problems.append(f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[-800:]}")
    origins = dict(re.findall(r"^\s+(\w+) = .*\((\w+)\)$", r.stdout, re.M))
    for e in env_list:
        if not e["name"].startswith("SLUICE_") and origins.get(e["name"]) != "environment":
            problems.append(f"{e['name']}: validate says its value came from "
                            f"{origins.get(e['name'])!r}, not the environment")
    t.result("`sluice validate` accepts the ConfigMap's pipeline with the Deployment's env",
             problems)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=os.path.join(REPO, "build", "sluice"))
    ap.add_argument("--write-configmap", action="store_true")
    a = ap.parse_args()
    if a.write_configmap:
        write_configmap()
        return 0
    t = harness.Checks()
    if kubernetes_validate is None:
        return t.missing(MISSING)
    docs = load_manifests()
    check_schema(t, docs)
    check_configmap(t, docs)
    check_wiring(t, docs)
    check_validate(t, docs, a.sluice)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
