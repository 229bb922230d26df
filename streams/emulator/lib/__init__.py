"""Moodle library code the emulated web-service functions share (lib/enrollib.php, the
cohort and meta sync handlers, user/lib.php), each module mirroring its Moodle counterpart."""
