#!/bin/sh
# images/build --customize: a release whose booth never becomes ready (its service fails at
# every start), for tests/image/test_update.py. What such a booth never reaches (the booth's
# Python packages, the GL drivers' LLVM, the modules of hardware QEMU does not have) is left
# out: a smaller bundle is minutes less of download and writing under emulation, and the
# release fails as it would with them.
set -e
cat >"$1/usr/lib/videobooth/run-booth" <<'EOF'
#!/bin/sh
echo "run-booth: this release is broken on purpose (the update test)"
exit 1
EOF
chmod 0755 "$1/usr/lib/videobooth/run-booth"
rm -rf "$1"/opt/videobooth/venv/lib/python3*/site-packages/*
rm -f "$1"/usr/lib/*-linux-gnu/libLLVM-*.so*
for modules in "$1"/usr/lib/modules/*/kernel; do
  rm -rf "$modules/drivers/gpu" "$modules/drivers/media" "$modules/drivers/net/wireless" \
    "$modules/drivers/infiniband" "$modules/drivers/scsi" "$modules/drivers/iio" "$modules/sound"
done
