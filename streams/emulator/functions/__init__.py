"""The emulated web-service functions, one module per Moodle component as in Moodle's tree:
``enrol`` (enrol/externallib.php: core_enrol_*, core_role_*), ``enrol_manual``, ``enrol_meta``,
``user``, ``course``, ``cohort``, ``group``, ``webservice``. Each follows the Moodle code path
cited in moodle-ws.md; :mod:`streams.emulator.registry` assembles them per site version."""
