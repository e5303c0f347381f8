"""The executions in memory: one ``ExecutionRecord`` each (``record``), kept and indexed by the
``ExecutionTable`` (``table``)."""
