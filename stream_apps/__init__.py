"""stream_apps"""
