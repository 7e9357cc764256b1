"""tidelake"""
