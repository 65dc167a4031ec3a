#!/bin/bash
# A VM on a qcowd disk: qemu-system-x86_64 boots Debian's kernel with a
# busybox initramfs made here (nothing is downloaded); its disk is a qcow
# image attached to qcowd and exported over NBD (nbdkit-qcowd-plugin).  The
# guest makes an ext2 file system, writes a file, syncs and powers off.
# Then qemu-img and qcowctl, offline, must read the same file system and the
# same file.  KVM is tried for a short while first (nested KVM often hangs
# at boot); TCG is the fallback.  QCOWD_VM_ACCEL=tcg|kvm forces one.
#
# Needs: qemu-system-x86, linux-image-amd64, busybox-static, cpio,
# e2fsprogs (debugfs), nbdkit, libnbd-bin.  Run by `make check-vm`.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/common.sh"
. "$top_srcdir/tests/daemon/lib.sh"
. "$top_srcdir/tests/nbd/lib.sh"
require_qemu
require_nbd
QEMU_SYSTEM=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
BUSYBOX=$(command -v busybox) || skip "busybox not found (apt-get install busybox-static)"
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
    skip "$BUSYBOX is not static (apt-get install busybox-static)"
command -v cpio >/dev/null || skip "cpio not found (apt-get install cpio)"
command -v debugfs >/dev/null || skip "debugfs not found (apt-get install e2fsprogs)"
KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
[ -n "$KERNEL" ] && [ -r "$KERNEL" ] || skip "no readable kernel in /boot (apt-get install linux-image-amd64)"
KVER=${KERNEL#/boot/vmlinuz-}
MODDIR=/lib/modules/$KVER/kernel
[ -d "$MODDIR" ] || skip "no modules for $KVER in /lib/modules"

# ---- the initramfs -----------------------------------------------------------------
# Debian's virtio drivers and ext4 (which mounts ext2, and wants crc32c) are modules, loaded
# in modules.dep's order.
MODULES="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk
         crypto/crc32c_generic lib/crc16 fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4"
mkdir -p "$T/initrd/bin" "$T/initrd/mod" "$T/initrd/proc" "$T/initrd/sys" "$T/initrd/dev" \
    "$T/initrd/mnt"
cp "$BUSYBOX" "$T/initrd/bin/busybox"
for m in $MODULES; do
    [ -f "$MODDIR/$m.ko" ] || skip "$MODDIR/$m.ko not found (compressed modules are not handled)"
    cp "$MODDIR/$m.ko" "$T/initrd/mod/"
    basename "$m" >>"$T/initrd/mod/order"
done
cat >"$T/initrd/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "qcowd-vm: init"
for m in $(cat /mod/order); do
    insmod /mod/$m.ko || echo "qcowd-vm: insmod $m failed"
done
for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
mke2fs -q -b 4096 /dev/vda && mount -t ext2 /dev/vda /mnt &&
    seq 1 300000 >/mnt/proof && mkdir /mnt/dir && echo "written by a guest on qcowd" >/mnt/dir/note &&
    sync && umount /mnt && echo "qcowd-vm: done $(md5sum </dev/vda | cut -c1-8)"
poweroff -f
INIT
chmod +x "$T/initrd/init"
(cd "$T/initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$T/initrd.gz" ||
    die "cannot make the initramfs"

# ---- the disk: a qcow image, attached, exported ---------------------------------------
start_nbd_daemon
"$QEMU_IMG" create -f qcow "$T/vm.qcow" 64M >/dev/null
ctl attach "$T/vm.qcow" >/dev/null || die "attach"
ctl export add vm.qcow --nbd "unix:$T/vm.sock" >/dev/null || die "export add"

# boot ACCEL SECONDS: run the guest; 0 when it said done, 2 when it did not
# even start within SECONDS (worth another accelerator), 1 otherwise.
boot() {
    local accel=$1 limit=$2 pid
    : >"$T/console.log"
    "$QEMU_SYSTEM" -accel "$accel" -m 256 -nographic -no-reboot -nodefaults -serial stdio \
        -kernel "$KERNEL" -initrd "$T/initrd.gz" \
        -append "console=ttyS0 panic=-1 edd=off quiet" \
        -drive "file=nbd:unix:$T/vm.sock,format=raw,if=virtio,cache=none" \
        </dev/null >"$T/console.log" 2>&1 &
    pid=$!
    if ! WAIT_LIMIT_S=$limit wait_until grep -q "qcowd-vm: init" "$T/console.log"; then
        kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
        return 2
    fi
    WAIT_LIMIT_S=300 wait_until sh -c "! kill -0 $pid 2>/dev/null" || kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    grep -q "qcowd-vm: done" "$T/console.log"
}

accel=${QCOWD_VM_ACCEL:-}
if [ -z "$accel" ] && [ -w /dev/kvm ]; then
    if boot kvm 10; then accel=kvm; else rc=$?; [ $rc = 2 ] || accel=kvm-failed; fi
fi
if [ -z "$accel" ] || [ "$accel" = tcg ]; then
    boot tcg 120 && accel=tcg || accel=tcg-failed
elif [ "$accel" = kvm ] && ! grep -q "qcowd-vm: done" "$T/console.log"; then
    boot kvm 60 || accel=kvm-failed
fi
msg "accelerator: $accel"
case $accel in *-failed)
    tail -n 30 "$T/console.log" >&2
    die "the guest did not finish ($accel)" ;;
esac
sum=$(sed -n 's/.*qcowd-vm: done \([0-9a-f]*\).*/\1/p' "$T/console.log")
ctl detach vm.qcow >/dev/null || die "detach"

# ---- offline: qemu-img and qcowctl read what the guest wrote ----------------------
"$QEMU_IMG" check "$T/vm.qcow" >/dev/null 2>&1; rc=$?
[ $rc -le 0 ] || [ $rc -eq 63 ] || die "qemu-img check: exit $rc"
"$QEMU_IMG" convert -O raw "$T/vm.qcow" "$T/qemu.raw" || die "qemu-img convert"
"$QCOWCTL" convert -O raw "$T/vm.qcow" "$T/qcowctl.raw" || die "qcowctl convert"
assert_same "$T/qemu.raw" "$T/qcowctl.raw" "qemu-img and qcowctl read different disks"
[ "$(md5sum <"$T/qemu.raw" | cut -c1-8)" = "$sum" ] || die "the disk differs from what the guest saw"
debugfs -R 'cat /proof' "$T/qemu.raw" 2>/dev/null >"$T/proof" || die "debugfs cannot read /proof"
seq 1 300000 | cmp - "$T/proof" >&2 || die "/proof is not what the guest wrote"
[ "$(debugfs -R 'cat /dir/note' "$T/qemu.raw" 2>/dev/null)" = "written by a guest on qcowd" ] ||
    die "/dir/note is not what the guest wrote"
"$QCOWCTL" check "$T/vm.qcow" >/dev/null || die "qcowctl check is not clean"
msg "the guest's file system reads back through qemu-img and qcowctl"
