"""MQTT: where events go. ``wire`` is the contract (topics, payloads, schema) that the ``publisher``,
``emocam listen`` and ``emocam.edge.payloads`` share; ``settings`` is the ``[mqtt]`` section;
``client`` builds paho clients; ``discovery`` speaks Home Assistant; ``publishing`` holds the
Publisher protocol and the no-broker stdout publisher.
"""
