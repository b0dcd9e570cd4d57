"""Offline checks of the deployment configs in ``cluster/``.

``cluster/ray-cluster.yaml`` is checked against the JSON schema that the installed Ray
ships (``ray/autoscaler/ray-schema.json``, the one ``ray up`` uses) and against Ray's own
``prepare_config`` / ``validate_config``. ``cluster/kuberay-rayjob.yaml`` is parsed with
``yaml.safe_load_all``; the KubeRay CRD is not installed here, so its structure is
asserted directly.

Past the schemas, the tests check what would break a real deployment: GPUs declared
only where they exist, and never on the head, so ``num_gpus=1`` actors cannot land
there; the venv first on ``PATH`` when Ray starts, since Jobs API entrypoints
otherwise fail with ``No module named 'ray'``; one auth mode and one colorstyle
environment on every node; the CUDA torch installed before the project and kept by
``constraints.txt``; file mounts that carry everything ``pip install -e`` needs; Ray
versions matching the client; and Kubernetes fields the API server or scheduler
would reject, or would leave pods Pending on.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parents[1]
RAY_CLUSTER_YAML = ROOT / "cluster" / "ray-cluster.yaml"
RAYJOB_YAML = ROOT / "cluster" / "kuberay-rayjob.yaml"
CLUSTER_README = ROOT / "cluster" / "README.md"

# The manifest the RayJob runs, relative to the repo root, and where the repo sits in the image.
ENTRY_MANIFEST = "manifests/example-s3.yaml"
IMAGE_APP_DIR = PurePosixPath("/app")

# EC2 instance types a config may use: (vCPUs, GPUs, memory GiB), from AWS's published specs.
EC2_INSTANCES = {
    "m5.xlarge": (4, 0, 16),
    "m5.2xlarge": (8, 0, 32),
    "m5.4xlarge": (16, 0, 64),
    "m6i.2xlarge": (8, 0, 32),
    "g4dn.xlarge": (4, 1, 16),
    "g4dn.2xlarge": (8, 1, 32),
    "g5.xlarge": (4, 1, 16),
    "g5.2xlarge": (8, 1, 32),
    "g5.4xlarge": (16, 1, 64),
    "g5.12xlarge": (48, 4, 192),
    "g6.xlarge": (4, 1, 16),
    "g6.2xlarge": (8, 1, 32),
    "p3.2xlarge": (8, 1, 61),
}

GPU_RESOURCE = "nvidia.com/gpu"
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


# --------------------------------------------------------------------------- helpers


def _home(path: str) -> str:
    """``~/x`` and ``$HOME/x`` (quotes stripped) in one spelling, to compare paths across commands."""
    path = path.strip("\"'")
    return re.sub(r"^(~|\$HOME|\$\{HOME\})(?=/|$)", "~", path)


def _shell_segments(command: str) -> list[list[str]]:
    """A one-line shell command split at ``;``, ``&&`` and ``||`` into token lists."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for token in lexer:
        if token in (";", "&&", "||", "&", "|"):
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def _ray_start(commands: list[str]) -> tuple[dict[str, str], dict[str, str | bool]]:
    """The environment exported before ``ray start`` and its flags, from one start-commands list.

    Returns:
        (env, flags): ``export``/``VAR=`` assignments that precede ``ray start`` in the same
        command, and ``--flag[=value]`` arguments of ``ray start`` (``True`` for bare flags).
    Raises:
        AssertionError: when no command, or more than one, runs ``ray start``.
    """
    found = []
    for command in commands:
        env: dict[str, str] = {}
        for seg in _shell_segments(command):
            words = seg[1:] if seg[0] == "export" else seg
            assignments = [w for w in words if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w)]
            if seg[0] == "export" or len(assignments) == len(words):
                for w in assignments:
                    key, _, value = w.partition("=")
                    env[key] = value
                continue
            i = next((k for k, w in enumerate(seg) if w.endswith("ray") and seg[k + 1 : k + 2] == ["start"]), None)
            if i is None:
                continue
            # VAR=value ray start ... (assignments prefixed to the command itself)
            for w in seg[:i]:
                if "=" in w:
                    key, _, value = w.partition("=")
                    env[key] = value
            flags: dict[str, str | bool] = {}
            for arg in seg[i + 2 :]:
                if arg.startswith("--"):
                    name, eq, value = arg[2:].partition("=")
                    flags[name] = value if eq else True
            found.append((env, flags))
    assert len(found) == 1, f"expected exactly one `ray start` in {commands}, found {len(found)}"
    return found[0]


def _pip_installs(commands: list[str]) -> list[tuple[int, list[str]]]:
    """(position in ``commands``, argv after ``pip install``) for every pip install, in order."""
    out = []
    for pos, command in enumerate(commands):
        for seg in _shell_segments(command):
            for i, word in enumerate(seg[:-1]):
                if (word.endswith("pip") or word.endswith("pip3")) and seg[i + 1] == "install":
                    out.append((pos, seg[i + 2 :]))
                elif word == "-m" and seg[i + 1 : i + 3] == ["pip", "install"]:
                    out.append((pos, seg[i + 3 :]))
    return out


def _option(argv: list[str], *names: str) -> str | None:
    """Value of ``--name value`` / ``--name=value`` / ``-c value`` in ``argv``, else None."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


_QUANTITY = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _bytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity (``16Gi``, ``2147483648``, ``500M``) in bytes."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(quantity))
    assert m, f"unparseable quantity {quantity!r}"
    return int(m.group(1)) * _QUANTITY[m.group(2) or ""]


def _constraint_pin(package: str) -> str:
    """The ``package==X`` version pinned in the repo's constraints.txt."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.fullmatch(rf"\s*{re.escape(package)}\s*==\s*([^\s#;]+)\s*(#.*)?", line)
        if m:
            return m.group(1)
    raise AssertionError(f"constraints.txt pins no {package}")


# --------------------------------------------------------------------------- Ray cluster launcher


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(RAY_CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def head_type(cluster) -> dict:
    return cluster["available_node_types"][cluster["head_node_type"]]


@pytest.fixture(scope="module")
def gpu_types(cluster) -> dict[str, dict]:
    types = {
        name: t
        for name, t in cluster["available_node_types"].items()
        if name != cluster["head_node_type"] and t.get("resources", {}).get("GPU", 0) > 0
    }
    assert types, "no worker node type declares a GPU: num_gpus=1 actors could never be scheduled"
    return types


def test_ray_cluster_matches_rays_schema(cluster):
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(cluster), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_ray_cluster_passes_rays_own_validation(cluster):
    """What `ray up` does before touching AWS: merge provider defaults, then validate."""
    util = pytest.importorskip("ray.autoscaler._private.util", reason="Ray moved its private config helpers")
    prepared = util.prepare_config(copy.deepcopy(cluster))
    util.validate_config(prepared)
    # Our head_setup_commands replace Ray's AWS default, which installs boto3. The AWS
    # node provider in the head's autoscaler cannot start without it.
    installs = [argv for _, argv in _pip_installs(prepared["head_setup_commands"])]
    assert any("boto3" in argv for argv in installs), "head never installs boto3 (needed by the AWS autoscaler)"


def test_head_declares_no_gpu(cluster, head_type):
    """Ray uses declared resources as-is (RAY_OVERRIDE_RESOURCES), so GPU must be 0 explicitly."""
    assert head_type["resources"].get("GPU") == 0, "head must declare GPU: 0"
    instance = head_type["node_config"]["InstanceType"]
    assert instance in EC2_INSTANCES, f"add {instance} to EC2_INSTANCES"
    assert EC2_INSTANCES[instance][1] == 0, f"head instance {instance} has GPUs: wasted, or actors land on the head"
    _, flags = _ray_start(cluster["head_start_ray_commands"])
    assert str(flags.get("num-gpus", "0")) == "0"


def test_gpu_workers_declare_one_real_gpu_each(cluster, gpu_types):
    for name, t in gpu_types.items():
        instance = t["node_config"]["InstanceType"]
        assert instance in EC2_INSTANCES, f"add {instance} to EC2_INSTANCES"
        vcpus, gpus, _ = EC2_INSTANCES[instance]
        assert t["resources"]["GPU"] == 1 == gpus, (
            f"{name}: declares GPU {t['resources']['GPU']} on {instance} ({gpus} GPUs); one actor per GPU node"
        )
        assert 1 <= t["resources"].get("CPU", vcpus) <= vcpus, f"{name}: declares more CPUs than {instance} has"
        assert t.get("max_workers", 0) >= max(1, t.get("min_workers", 0)), f"{name}: could never start a node"
    assert cluster["max_workers"] >= max(t["max_workers"] for t in gpu_types.values())


def test_gpu_workers_have_aws_credentials(gpu_types):
    """Ray attaches an instance profile to the head only. Actors on a worker without one cannot reach s3://."""
    for name, t in gpu_types.items():
        profile = t["node_config"].get("IamInstanceProfile", {})
        assert profile.get("Name") or profile.get("Arn"), f"{name}: no IamInstanceProfile, so no S3 credentials"


def test_start_commands_share_port_auth_and_colorstyle_env(cluster):
    head_env, head = _ray_start(cluster["head_start_ray_commands"])
    worker_env, worker = _ray_start(cluster["worker_start_ray_commands"])

    assert head.get("head") is True
    # Without this flag the autoscaler does not run and no GPU worker is ever started.
    assert head.get("autoscaling-config") == "~/ray_bootstrap_config.yaml"
    assert head.get("dashboard-host") == "0.0.0.0", "the Jobs API must be reachable on :8265"
    assert worker.get("address") == f"$RAY_HEAD_IP:{head.get('port', '6379')}"

    for env in (head_env, worker_env):
        assert env.get("COLORSTYLE_OFFLINE") == "1"
        assert env.get("COLORSTYLE_CACHE")
    assert head_env["COLORSTYLE_CACHE"] == worker_env["COLORSTYLE_CACHE"]

    # Every node must run with the same auth mode, and token mode needs the token on every node.
    assert head_env.get("RAY_AUTH_MODE") == worker_env.get("RAY_AUTH_MODE")
    assert head_env.get("RAY_AUTH_MODE") in ("token", "disabled")
    if head_env["RAY_AUTH_MODE"] == "token":
        assert "~/.ray/auth_token" in map(_home, cluster["file_mounts"]), "token auth without the token on the nodes"


def test_venv_bin_is_first_on_path_when_ray_starts(cluster):
    """Jobs API entrypoints inherit Ray's PATH: the system python first means `No module named 'ray'`."""
    venvs = []
    for command in cluster["setup_commands"]:
        for seg in _shell_segments(command):
            if len(seg) >= 3 and re.fullmatch(r"python3(\.\d+)?", seg[0]) and seg[1:3] == ["-m", "venv"]:
                venvs.append(_home(seg[3]))
    assert len(venvs) == 1, f"expected one venv created in setup_commands, found {venvs}"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        env, _ = _ray_start(cluster[key])
        first = _home(env.get("PATH", "").split(":")[0])
        assert first == f"{venvs[0]}/bin", f"{key}: PATH starts with {first!r}, not the venv's bin"


def test_venv_python_satisfies_requires_python(cluster):
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.fullmatch(r">=\s*(\d+)\.(\d+)", requires).groups())
    versions = {tuple(map(int, m)) for c in cluster["setup_commands"]
                for m in re.findall(r"python(\d+)\.(\d+) -m venv", c)}
    assert versions and all(v >= minimum for v in versions), f"venv Python {versions} vs requires-python {requires}"


def _project_mount(cluster) -> str:
    pyprojects = [remote for remote, local in cluster["file_mounts"].items() if Path(local).name == "pyproject.toml"]
    assert len(pyprojects) == 1, "file_mounts must ship pyproject.toml exactly once"
    return str(PurePosixPath(_home(pyprojects[0])).parent)


def test_file_mounts_carry_what_pip_install_needs(cluster):
    project = _project_mount(cluster)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", "constraints.txt", pyproject["project"]["readme"]}
    needed |= {p.rstrip("*").rstrip(".") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    mounted = {}
    for remote, local in cluster["file_mounts"].items():
        remote = _home(remote)
        if remote.startswith(project + "/"):
            mounted[remote[len(project) + 1 :]] = local
    missing = needed - set(mounted)
    assert not missing, f"pip install -e {project} would fail: {sorted(missing)} not mounted"
    for rel, local in mounted.items():
        assert Path(local).name == Path(rel).name and not Path(local).is_absolute()
        # `ray up` runs from the repo root; a missing local path aborts it mid-setup.
        assert (ROOT / local).exists(), f"file_mounts: {local} does not exist in the repository"
    assert all(Path(local).name != ".venv" and local not in (".", "./") for local in cluster["file_mounts"].values())


def test_torch_builds_are_installed_before_the_project_and_pinned(cluster):
    torch_pin = _constraint_pin("torch")
    project = _project_mount(cluster)
    expectations = {
        "head_setup_commands": r"https://download\.pytorch\.org/whl/cpu/?",
        "worker_setup_commands": r"https://download\.pytorch\.org/whl/cu\d+/?",
    }
    for key, index_re in expectations.items():
        installs = _pip_installs(cluster["setup_commands"] + cluster[key])
        torch_steps = [(i, argv) for i, argv in installs if any(a.startswith("torch") for a in argv)]
        project_steps = [(i, argv) for i, argv in installs if "-e" in argv]
        assert len(torch_steps) == 1 and len(project_steps) == 1, f"{key}: one torch and one project install expected"
        (t_pos, t_argv), (p_pos, p_argv) = torch_steps[0], project_steps[0]

        assert f"torch=={torch_pin}" in t_argv, f"{key}: torch must be pinned to constraints.txt's {torch_pin}"
        index = _option(t_argv, "--index-url", "-i")
        assert index and re.fullmatch(index_re, index), f"{key}: torch from {index!r}"
        assert t_pos < p_pos, f"{key}: torch must be installed before the project, or pip picks its own build"

        # The project install keeps that torch through the constraints file...
        assert _home(_option(p_argv, "-c", "--constraint") or "") == f"{project}/constraints.txt"
        editable = _home(p_argv[p_argv.index("-e") + 1])
        assert re.sub(r"\[.*\]$", "", editable) == project
        # ...and runs the laptop's Ray: `ray up` and the Jobs API client expect the same version.
        assert f"ray[default]=={ray.__version__}" in p_argv, f"{key}: pin ray[default]=={ray.__version__}"


# --------------------------------------------------------------------------- KubeRay RayJob


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict]:
    docs = [d for d in yaml.safe_load_all(RAYJOB_YAML.read_text()) if d]
    for d in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(d), f"incomplete Kubernetes object: {d}"
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]), d["metadata"]["name"]
    return docs


@pytest.fixture(scope="module")
def rayjob(k8s_docs) -> dict:
    jobs = [d for d in k8s_docs if d["kind"] == "RayJob"]
    assert len(jobs) == 1
    assert jobs[0]["apiVersion"] == "ray.io/v1"
    return jobs[0]


def _ray_pod_templates(rayjob) -> list[tuple[str, dict, dict]]:
    """(group name, rayStartParams, pod spec) for the head and every worker group."""
    spec = rayjob["spec"]["rayClusterSpec"]
    out = [("head", spec["headGroupSpec"].get("rayStartParams", {}), spec["headGroupSpec"]["template"]["spec"])]
    for g in spec["workerGroupSpecs"]:
        out.append((g["groupName"], g.get("rayStartParams", {}), g["template"]["spec"]))
    return out


def _container_env(container: dict, docs: list[dict]) -> dict[str, dict]:
    """Effective env of a container: ConfigMap envFrom entries as {'value': v}, then env entries."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, dict] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"envFrom ConfigMap {name!r} is not defined in {RAYJOB_YAML.name}"
        env.update({k: {"value": str(v)} for k, v in configmaps[name]["data"].items()})
    for entry in container.get("env", []):
        env[entry["name"]] = entry
    return env


def test_k8s_file_holds_no_secret_material(k8s_docs):
    assert not [d for d in k8s_docs if d["kind"] == "Secret"], "create the Secret with kubectl; never commit it"


def test_entrypoint_runs_colorstyle_on_a_manifest_in_the_image(rayjob):
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[:2] == ["colorstyle", "run"] and len(argv) == 3, argv
    path = PurePosixPath(argv[2])
    assert path.is_absolute() and path.is_relative_to(IMAGE_APP_DIR / "manifests"), path
    assert str(path.relative_to(IMAGE_APP_DIR)) == ENTRY_MANIFEST


def test_entrypoint_manifest_is_in_the_repository():
    """The image copies the repo to /app; a missing manifest fails only after the GPU pods are up."""
    assert (ROOT / ENTRY_MANIFEST).is_file(), f"{ENTRY_MANIFEST} is missing: the RayJob entrypoint would fail"


def test_rayjob_cleans_up_after_itself(rayjob):
    spec = rayjob["spec"]
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True, "GPU pods would outlive the job"
    # KubeRay honours the TTL only with shutdownAfterJobFinishes; it must be a non-negative int.
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and 0 < spec["ttlSecondsAfterFinished"] <= 3600
    assert isinstance(spec["activeDeadlineSeconds"], int) and spec["activeDeadlineSeconds"] > 0
    assert isinstance(spec.get("backoffLimit", 0), int) and spec.get("backoffLimit", 0) >= 0


def test_ray_versions_agree(rayjob, cluster):
    version = rayjob["spec"]["rayClusterSpec"]["rayVersion"]
    assert isinstance(version, str), "quote rayVersion, or YAML may read it as a number"
    assert version == ray.__version__, f"rayVersion {version} vs the client's Ray {ray.__version__}"
    pins = {
        m
        for key in ("head_setup_commands", "worker_setup_commands")
        for c in cluster[key]
        for m in re.findall(r"ray\[default\]==([\w.]+)", c)
    }
    assert pins == {version}
    auth = rayjob["spec"]["rayClusterSpec"].get("authOptions")
    if auth and auth.get("mode", "token") == "token":
        assert tuple(map(int, version.split(".")[:2])) >= (2, 52), "KubeRay token auth needs Ray >= 2.52"


def test_ray_start_params_are_strings(rayjob):
    """rayStartParams is map[string]string in the CRD: an unquoted number is rejected by the API server."""
    for group, params, _ in _ray_pod_templates(rayjob):
        bad = {k: v for k, v in params.items() if not isinstance(v, str) or not v}
        assert not bad, f"{group}: quote these rayStartParams values: {bad}"
        assert "address" not in params and "port" not in params, f"{group}: KubeRay sets these itself"


def test_head_pod_has_no_gpu(rayjob):
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"].get("num-gpus") == "0"
    for c in head["template"]["spec"]["containers"]:
        for kind in ("requests", "limits"):
            assert GPU_RESOURCE not in c.get("resources", {}).get(kind, {}), f"head container {c['name']} takes a GPU"
    assert GPU_RESOURCE not in json.dumps(head["template"]["spec"].get("tolerations", []))


def test_gpu_worker_group_requests_one_gpu_and_can_be_scheduled(rayjob):
    groups = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert groups
    for g in groups:
        name = g["groupName"]
        assert 0 <= g["minReplicas"] <= g.get("replicas", g["minReplicas"]) <= g["maxReplicas"], name
        assert g["maxReplicas"] >= 1, f"{name}: no GPU pod could ever start"
        pod = g["template"]["spec"]
        ray_container = pod["containers"][0]  # KubeRay treats the first container as Ray's
        resources = ray_container["resources"]
        assert int(resources["limits"][GPU_RESOURCE]) == 1, f"{name}: one GPU per pod, one actor per GPU"
        # Extended resources: requests, if given, must equal limits.
        assert str(resources.get("requests", {}).get(GPU_RESOURCE, resources["limits"][GPU_RESOURCE])) == str(
            resources["limits"][GPU_RESOURCE]
        )
        assert g["rayStartParams"].get("num-gpus", "1") == "1", f"{name}: num-gpus disagrees with the GPU limit"
        assert pod.get("nodeSelector") or pod.get("affinity"), f"{name}: nothing steers the pods to GPU nodes"
        tolerates_gpu_taint = any(
            t.get("key") == GPU_RESOURCE and t.get("operator", "Equal") in ("Exists", "Equal")
            and t.get("effect", "NoSchedule") == "NoSchedule"
            for t in pod.get("tolerations", [])
        )
        assert tolerates_gpu_taint, f"{name}: pods stay Pending on tainted GPU nodes"


def test_object_store_fits_shm_and_memory(rayjob):
    for group, params, pod in _ray_pod_templates(rayjob):
        container = pod["containers"][0]
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        # Containers get a 64 MiB /dev/shm: Ray's object store would fall back to slow disk.
        assert "/dev/shm" in mounts, f"{group}: mount a memory emptyDir at /dev/shm"
        shm = volumes[mounts["/dev/shm"]]["emptyDir"]
        assert shm.get("medium") == "Memory"
        memory_limit = _bytes(container["resources"]["limits"]["memory"])
        if "object-store-memory" in params:
            store = int(params["object-store-memory"])
            assert store <= _bytes(shm["sizeLimit"]), f"{group}: object store larger than /dev/shm"
            assert store <= memory_limit // 2, f"{group}: object store leaves too little memory for the actor"


def test_images_are_one_pinned_tag(rayjob):
    images = {c["image"] for _, _, pod in _ray_pod_templates(rayjob) for c in pod["containers"]}
    assert len(images) == 1, f"head and workers must run the same Ray/Python/colorstyle: {images}"
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag and tag not in ("", "latest"), f"pin a tag: {image}"


def test_ray_containers_get_colorstyle_env_and_s3_credentials(rayjob, k8s_docs):
    secret_names = set()
    for group, _, pod in _ray_pod_templates(rayjob):
        container = pod["containers"][0]
        env = _container_env(container, k8s_docs)
        assert env.get("COLORSTYLE_OFFLINE", {}).get("value") == "1", group

        cache = PurePosixPath(env["COLORSTYLE_CACHE"]["value"])
        volumes = {v["name"] for v in pod.get("volumes", [])}
        cache_mounts = [
            m for m in container.get("volumeMounts", []) if cache.is_relative_to(PurePosixPath(m["mountPath"]))
        ]
        assert cache_mounts, f"{group}: COLORSTYLE_CACHE {cache} is not on a mounted volume"
        assert all(m["name"] in volumes for m in cache_mounts), f"{group}: cache volume is not defined in the pod"

        for key in S3_SECRET_KEYS:
            entry = env.get(key)
            assert entry and "value" not in entry, f"{group}: {key} must come from a Secret, not a literal"
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["key"] == key
            secret_names.add(ref["name"])
    assert len(secret_names) == 1, f"all pods must read one credentials Secret: {secret_names}"

    # The README's `kubectl create secret` must create exactly what the pods reference,
    # or they sit in CreateContainerConfigError.
    (secret,) = secret_names
    readme = CLUSTER_README.read_text()
    assert f"kubectl create secret generic {secret}" in readme
    for key in S3_SECRET_KEYS:
        assert f"--from-literal={key}=" in readme


def test_kuberay_gpu_workers_fit_the_manifest_it_runs():
    """Every actor of the manifest the RayJob runs must find a GPU pod (the autoscaler is off)."""
    from jobs.manifest import load_manifest

    docs = [d for d in yaml.safe_load_all((ROOT / "cluster" / "kuberay-rayjob.yaml").read_text()) if d]
    job = next(d for d in docs if d.get("kind") == "RayJob")
    manifest_path = job["spec"]["entrypoint"].split()[-1].removeprefix("/app/")
    ex = load_manifest(str(ROOT / manifest_path)).execution
    gpu_pods = sum(g["replicas"] for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"])
    assert ex.gpus_per_actor == 1 and ex.actors <= gpu_pods
