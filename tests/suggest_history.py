"""The contract the suggestion tests start from: two fit rules on imported attributes,
one that the tests' histories make predictive (occupation) and one that they make noise
(colour)."""

COURSES_CONTRACT = """schema_version: 1
name: Courses
scoring:
  fit:
    - name: Working professional
      when: {field: attributes.occupation, equals: Working Professional}
      points: 5
    - name: Likes red
      when: {field: attributes.color, equals: red}
      points: 15
mql:
  threshold: 10
"""
