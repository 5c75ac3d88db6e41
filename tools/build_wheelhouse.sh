#!/usr/bin/env bash
# Build a wheelhouse for installing kacnb on an offline GPU node.
#
# The node is assumed to have a working CUDA torch already (clusters provide it as a module
# or image). Everything else kacnb needs -- the notebook tool chain (papermill, jupytext,
# nbval, nbformat, nbclient, ipykernel, jupyter-client, ...), the test tools and their own
# dependencies -- is downloaded here, on a machine with internet, as wheels for the node's
# Python and platform, together with a wheel of kacnb itself.
#
#   tools/build_wheelhouse.sh [DEST] [PYTHON_VERSION]      # defaults: wheelhouse 3.12
#   # copy DEST and the repository to the node, then on the node:
#   python -m pip install --no-index --find-links DEST "kacnb[test]"
#   # or, for an editable checkout:  python -m pip install --no-index --find-links DEST \
#   #                                  --no-build-isolation -e ".[test]"
#
# Packages the node already has (numpy, scipy, matplotlib, ...) are downloaded too unless
# named in the SKIP environment variable (space-separated distribution names), e.g.
#   SKIP="numpy scipy matplotlib pillow fonttools contourpy kiwisolver" tools/build_wheelhouse.sh
# which makes the wheelhouse much smaller; pip on the node uses what is installed when it
# satisfies the requirement, so extra wheels do no harm either.
set -euo pipefail
dest=${1:-wheelhouse}
pyver=${2:-3.12}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dest"

platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_5_x86_64; do
    platforms+=(--platform "$tag")
done
target=(--only-binary=:all: --implementation cp --python-version "$pyver" "${platforms[@]}")

# kacnb's requirements without torch and torchdiffeq (resolving either would pull a
# multi-GB torch build; the node's own CUDA torch must not be replaced), read
# from pyproject.toml so this list never drifts from the package metadata.
mapfile -t reqs < <(python3 - "$root/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = project["dependencies"] + project["optional-dependencies"]["test"]
for r in reqs:
    name = r.split(";")[0].strip()
    if ";" in r and "python_version" in r:
        continue
    if not name.lower().startswith("torch"):
        print(name)
PY
)
# setuptools lets the node build an editable install without network.
python3 -m pip download "${target[@]}" -d "$dest" "${reqs[@]}" setuptools wheel
# torchdiffeq is pure Python; its only other dependency, scipy, is already in the set.
python3 -m pip download "${target[@]}" --no-deps -d "$dest" "torchdiffeq>=0.2.3"
python3 -m pip wheel --no-deps -w "$dest" "$root"
for name in ${SKIP:-}; do
    norm=$(echo "$name" | tr 'A-Z-' 'a-z_')
    find "$dest" -maxdepth 1 -iname "${norm}-[0-9]*.whl" -delete
done
echo "wheelhouse ready: $(ls "$dest" | wc -l) wheels in $dest (Python $pyver)"
