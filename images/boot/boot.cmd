# The booth's boot script (U-Boot; made into boot.scr with mkimage): which root slot to start.
#
# Two root slots, A (partition 2) and B (partition 3), as RAUC's U-Boot integration has them:
# BOOT_ORDER lists the slots to try, BOOT_A_LEFT and BOOT_B_LEFT how many starts each has
# left. Every start takes one from the slot it starts; a booth that works marks its slot good
# (RAUC sets its count back to 3), so a slot that never works runs out and the next in the
# order starts. RAUC writes the same variables from Linux with fw_setenv: after installing
# into B it sets BOOT_ORDER="B A" and BOOT_B_LEFT=3.
#
# The variables live in uboot.env on the boot partition (U-Boot's own checksummed format,
# which libubootenv's fw_setenv reads and writes through /etc/fw_env.config), not in the
# firmware's storage: any U-Boot build can keep them, and they survive a re-flashed firmware.
# The partition is the bootable one U-Boot found this script on: ${devtype} ${devnum}:1.

echo "videobooth: choosing a root slot"
setenv BOOT_ORDER "A B"
setenv BOOT_A_LEFT 3
setenv BOOT_B_LEFT 3
if load ${devtype} ${devnum}:1 ${loadaddr} uboot.env; then
  env import -c ${loadaddr} 0x4000 BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fi

setenv BOOT_SLOT
for slot in ${BOOT_ORDER}; do
  if test "x${BOOT_SLOT}" = "x"; then
    if test "x${slot}" = "xA" && test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv BOOT_SLOT A
      setenv rootpart 2
    fi
    if test "x${slot}" = "xB" && test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv BOOT_SLOT B
      setenv rootpart 3
    fi
  fi
done

if test "x${BOOT_SLOT}" = "x"; then
  # Every slot used its starts: give both three more rather than start nothing.
  echo "videobooth: no slot has starts left; trying them all again"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  env export -c -s 0x4000 ${loadaddr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
  fatwrite ${devtype} ${devnum}:1 ${loadaddr} uboot.env 0x4000
  reset
fi

echo "videobooth: slot ${BOOT_SLOT} (starts left: A ${BOOT_A_LEFT}, B ${BOOT_B_LEFT})"
env export -c -s 0x4000 ${loadaddr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
fatwrite ${devtype} ${devnum}:1 ${loadaddr} uboot.env 0x4000

# A technician's extra kernel arguments for one card (boot messages on the screen, say): a
# line "extra_bootargs=..." in bootargs.txt on the boot partition; only that variable is read.
setenv extra_bootargs
if load ${devtype} ${devnum}:1 ${loadaddr} bootargs.txt; then
  env import -t ${loadaddr} ${filesize} extra_bootargs
fi

part uuid ${devtype} ${devnum}:${rootpart} rootuuid
setenv bootargs "@CMDLINE@ root=PARTUUID=${rootuuid} rauc.slot=${BOOT_SLOT} ${extra_bootargs}"
if ext4load ${devtype} ${devnum}:${rootpart} ${kernel_addr_r} /boot/vmlinuz; then
  if ext4load ${devtype} ${devnum}:${rootpart} ${ramdisk_addr_r} /boot/initrd.img; then
    booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
  fi
fi
# No kernel in the slot (or it did not start): this start is counted; the next one decides.
echo "videobooth: slot ${BOOT_SLOT} has no kernel that starts"
reset
