"""JUnit XML, the one writer for every report that has it: the run's results (one <testsuite>
per cell, every case with the cell's axes and the provider's facts as <properties>) and the
readiness check. error = infrastructure, failure = product, skipped = unsupported or not
applicable (with the reason). ElementTree, because junit-xml's TestCase has no per-case
properties."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Case:
    classname: str
    name: str
    outcome: str  # passed, failed, error, skipped, unsupported
    message: str = ""
    seconds: float = 0.0
    properties: dict = field(default_factory=dict)
    stdout: str = ""


def document(title: str, suites: dict[str, list[Case]]) -> ET.ElementTree:
    root = ET.Element("testsuites", name=title)
    for name, cases in suites.items():
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)),
                              failures=str(sum(c.outcome == "failed" for c in cases)),
                              errors=str(sum(c.outcome == "error" for c in cases)),
                              skipped=str(sum(c.outcome in ("skipped", "unsupported") for c in cases)),
                              time=f"{sum(c.seconds for c in cases):.3f}")
        for c in cases:
            case = ET.SubElement(suite, "testcase", classname=c.classname, name=c.name, time=f"{c.seconds:.3f}")
            if c.properties:
                props = ET.SubElement(case, "properties")
                for k, v in c.properties.items():
                    ET.SubElement(props, "property", name=k, value=str(v))
            if c.outcome == "failed":
                ET.SubElement(case, "failure", message=c.message[:500]).text = c.message
            elif c.outcome == "error":
                ET.SubElement(case, "error", message=c.message[:500]).text = c.message
            elif c.outcome in ("skipped", "unsupported"):
                ET.SubElement(case, "skipped", message=c.message)
            if c.stdout:
                ET.SubElement(case, "system-out").text = c.stdout
    ET.indent(root)
    return ET.ElementTree(root)


def to_string(title: str, suites: dict[str, list[Case]]) -> str:
    return ET.tostring(document(title, suites).getroot(), encoding="unicode", xml_declaration=True)


def write(run, path) -> None:
    """The run's results: one suite per cell."""
    by_cell = defaultdict(list)
    for r in run.records:
        module, _, name = r.test.rpartition("::")
        props = {**{f"archmatrix.{a}": v for a, v in r.axes.items()}, "archmatrix.cell": r.cell,
                 **{f"archmatrix.{k}": v for k, v in r.properties.items()},
                 **{f"archmatrix.artifact.{k}": v for k, v in r.artifacts.items()}}
        by_cell[r.cell].append(Case(module.replace("/", ".").removesuffix(".py"), name, r.outcome, r.message,
                                    r.duration, props))
    document(f"archmatrix {run.id}", dict(sorted(by_cell.items()))).write(path, encoding="utf-8",
                                                                           xml_declaration=True)
