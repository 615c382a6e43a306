"""Proofs whose steps are a numbered list render as a list (issue 16).

sphinx-proof's ``prf:proof`` puts "Proof. " in front of the first line of its content. When that
line is the first item of a list, "Proof. 1. Substitute ..." becomes an ordinary paragraph and the
later items, which in CommonMark cannot interrupt a paragraph, run on inside it: the whole proof
is one paragraph. This directive gives "Proof." a line of its own in that case, so the list
stays a list; a proof that opens with prose is left as sphinx-proof renders it. Each proof also
gets an id of its own (sphinx-proof gives them all the id "proof").
"""

from __future__ import annotations

import re

from sphinx_proof.directive import ProofDirective

LIST_ITEM = re.compile(r"^\s*(\d+[.)]|[-*+])\s")


class ListProofDirective(ProofDirective):
    def run(self):
        if self.content and LIST_ITEM.match(self.content[0]):
            source, offset = self.content.info(0)
            self.content.insert(0, "", source, offset)
            self.content.insert(1, "", source, offset)
        nodes = super().run()
        # sphinx-proof gives every proof the id "proof": a page with several has duplicate ids
        nodes[0].children[0]["ids"] = [f"proof-{self.env.new_serialno('proof') + 1}"]
        return nodes


def setup(app):
    app.setup_extension("sphinx_proof")
    app.add_directive_to_domain("prf", "proof", ListProofDirective, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
