#!/usr/bin/env bash
# Installs everything VLMimic needs on a Debian/Ubuntu machine with Python 3.11:
# the apt libraries (USB for RealSense/open3d, EGL/OSMesa for headless MuJoCo rendering, ffmpeg-free
# video via imageio-ffmpeg's bundled binary) and the pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")"
APT_PACKAGES="libusb-1.0-0 libegl1 libgl1 libgles2 libosmesa6 libglib2.0-0 libgomp1"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
python3 -c "import mujoco, open3d, cv2, langgraph, torch; print('vlmimic: dependencies installed')"
