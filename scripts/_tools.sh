# Sourced by scripts/test after _venv.sh: make sure the system tools the tests call are present.
# Quiet when everything is installed; installs what is missing with apt-get (Debian/Ubuntu), or
# stops with a message saying where to get it.
#   docker-compose   validates deployments/docker-compose.yml (Debian package, 1.29.2 on bookworm)
#   kubectl          validates and renders the Kubernetes manifests (kubectl kustomize)
#   chromium         /usr/bin/chromium, the browser Playwright drives in the web UI's tests
#                    (tests/support/browser.py); Playwright's own browser downloads are never used

_weir_apt_install() {
    # _weir_apt_install PACKAGE...: apt-get install, running apt-get update only when the
    # package lists are missing or stale. Returns apt-get's failure instead of exiting.
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || return 1
        sudo=(sudo -n)
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -y --no-install-recommends)
    "${apt[@]}" install "$@" >/dev/null 2>&1 && return 0
    "${sudo[@]}" apt-get -qq update >/dev/null 2>&1 || return 1
    "${apt[@]}" install "$@" >/dev/null
}

if ! command -v docker-compose >/dev/null 2>&1; then
    echo "installing docker-compose (apt package docker-compose) to validate deployments/docker-compose.yml" >&2
    if ! _weir_apt_install docker-compose || ! command -v docker-compose >/dev/null 2>&1; then
        echo "error: docker-compose is missing and could not be installed; install it with" \
            "'apt-get install docker-compose' (as root) or put any docker-compose on PATH" >&2
        exit 1
    fi
fi

if ! command -v kubectl >/dev/null 2>&1; then
    echo "installing kubectl (apt package kubectl) to validate the Kubernetes manifests" >&2
    if ! _weir_apt_install kubectl || ! command -v kubectl >/dev/null 2>&1; then
        echo "error: kubectl is missing and apt-get could not install it (Debian has no kubectl" \
            "package); add the Kubernetes apt repository (https://pkgs.k8s.io/core:/stable:/v1.32/deb/, see" \
            "https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/) or Google Cloud's" \
            "(https://packages.cloud.google.com/apt cloud-sdk-bookworm), or put a kubectl binary" \
            "on PATH" >&2
        exit 1
    fi
fi

if [[ ! -x /usr/bin/chromium ]]; then
    echo "installing chromium (apt package chromium) for the web UI's browser tests" >&2
    if ! _weir_apt_install chromium || [[ ! -x /usr/bin/chromium ]]; then
        echo "error: /usr/bin/chromium is missing and could not be installed; install Debian's" \
            "package with 'apt-get install chromium' (as root), or put a Chromium binary at" \
            "/usr/bin/chromium (Ubuntu's chromium is a snap: use Debian's package or Google's" \
            "build). Do not run 'playwright install': the tests use that binary only" >&2
        exit 1
    fi
fi

unset -f _weir_apt_install
