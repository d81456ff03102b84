#!/bin/sh
# The program a ContainerEntrypoint names: reports what it was started with.
echo "ALT $0 argc=$# [$*]"
echo "PID1 $(tr '\0' ' ' < /proc/1/cmdline)"
