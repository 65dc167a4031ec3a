# A VM on a qcowd disk (tests/vm/boot.sh): not part of `make check` (about
# 40 s of TCG boot on two cores); run it with `make check-vm`.  It skips
# (exit 77) without qemu-system-x86, linux-image-amd64, busybox-static,
# cpio, e2fsprogs, nbdkit or libnbd-bin.
EXTRA_DIST += tests/vm/boot.sh
check-vm: all
	@$(AM_TESTS_ENVIRONMENT) bash $(srcdir)/tests/vm/boot.sh; rc=$$?; \
	  if [ $$rc = 77 ]; then echo "check-vm: SKIP"; exit 0; fi; \
	  if [ $$rc = 0 ]; then echo "check-vm: PASS"; else echo "check-vm: FAIL"; fi; exit $$rc
.PHONY: check-vm
