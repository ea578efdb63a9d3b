"""Load generation and side-by-side comparisons of coord against Apache ZooKeeper.

``python -m benchmarks.loadgen`` drives one server; ``python -m benchmarks.compare`` starts
Apache ZooKeeper and coord on 127.0.0.1 and prints throughput and latency ratios.
"""
