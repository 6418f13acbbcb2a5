"""Entry point for buildozer/python-for-android (it runs main.py from the APK's source root).
On desktop use ``crewline-handset`` or ``python -m mobile_app``."""

from mobile_app.__main__ import main

main()
