"""JUnit XML from results.json: one <testsuite> per cell, every case with the cell's axes and
the provider's facts as <properties>; error = infrastructure, failure = product, skipped =
unsupported or not applicable (with the reason). ElementTree, because junit-xml's TestCase
has no per-case properties."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict


def write(run, path) -> None:
    root = ET.Element("testsuites", name=f"archmatrix {run.id}")
    by_cell = defaultdict(list)
    for r in run.records:
        by_cell[r.cell].append(r)
    for cell, recs in sorted(by_cell.items()):
        counts = {o: sum(r.outcome == o for r in recs) for o in ("failed", "error")}
        suite = ET.SubElement(root, "testsuite", name=cell, tests=str(len(recs)), failures=str(counts["failed"]),
                              errors=str(counts["error"]),
                              skipped=str(sum(r.outcome in ("skipped", "unsupported") for r in recs)),
                              time=f"{sum(r.duration for r in recs):.3f}")
        for r in recs:
            module, _, name = r.test.rpartition("::")
            case = ET.SubElement(suite, "testcase", classname=module.replace("/", ".").removesuffix(".py"),
                                 name=name, time=f"{r.duration:.3f}")
            props = ET.SubElement(case, "properties")
            for k, v in {**{f"archmatrix.{a}": v for a, v in r.axes.items()}, "archmatrix.cell": cell,
                         **{f"archmatrix.{k}": v for k, v in r.properties.items()},
                         **{f"archmatrix.artifact.{k}": v for k, v in r.artifacts.items()}}.items():
                ET.SubElement(props, "property", name=k, value=str(v))
            if r.outcome == "failed":
                ET.SubElement(case, "failure", message=r.message[:500]).text = r.message
            elif r.outcome == "error":
                ET.SubElement(case, "error", message=r.message[:500]).text = r.message
            elif r.outcome in ("skipped", "unsupported"):
                ET.SubElement(case, "skipped", message=r.message)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
