"""The handset link: the MQTT wire contract shared by the server bridge and the handset.

Nothing in this package imports the server or Kivy (import-linter enforces the former).
"""
