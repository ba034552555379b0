"""The ground floor: settings, errors, the Avro codec and the topic names; every package may use it.

It imports no other part of mugpos except ``mugpos.schemas`` (the Avro files the codec reads).
"""
