# Copyright: (c) 2026, SolanaOps platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the collection's action plugins that answer a task on the controller when they can.

A module run costs about a quarter of a second of CPU before it does anything (AnsiballZ builds,
starts and imports it); a task whose answer is a file or two on the controller need not pay it.
An action plugin subclasses ControllerAnswer and implements ``answer``: its result computed here,
in the worker process, or None to run the module as usual. Answering is only sound where the
module would run here as this user (a ``local`` connection without become), so ``answer`` is
asked only then, never for an async task.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash


class ControllerAnswer(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused since ansible-core 2.10
        answer = None if self._task.async_val or not self._on_controller() else self.answer()
        if answer is not None:
            result.update(answer)
            return result
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _on_controller(self):
        """The module would run here, as this user: it would read and write what this process does."""
        return self._connection.transport == "local" and not self._play_context.become

    def validated(self, argument_spec, **constraints):
        """The task's arguments as the module would see them, or None when they have errors (the
        module's to report)."""
        validated = ArgumentSpecValidator(argument_spec, **constraints).validate(self._task.args)
        return None if validated.error_messages else validated.validated_parameters

    def answer(self):
        """The module's result computed here, or None when the module has to run."""
        raise NotImplementedError
