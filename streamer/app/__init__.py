"""The only package that imports Faust: app, topics, tables, agents."""
