"""ipywidgets front end of the editing lab: controls and displays wired to :class:`timelab.lab.LabSession`.

Nothing here decides anything: every button calls a session method (``apply``, ``undo``, ``reset``)
and shows the :class:`~timelab.lab.LabView` it returns: its message, a table of the judged shares and
attributes kept per test prompt (:func:`timelab.lab.report_rows`), the edit's numbers, the images over
the seeds and one prompt's attention maps. Actions run in a background thread so the
notebook stays responsive; the buttons are disabled meanwhile and the session's lock refuses
overlapping runs anyway.
"""

from __future__ import annotations

import html
import io
import textwrap
import threading

import ipywidgets as widgets
import matplotlib.pyplot as plt

from .editing.solver import PAPER_LAMBDA
from .lab import LabControls, LabSession, LabView, numbers_text, report_rows, share_text
from .viz import attention_before_after, image_grid, image_strips


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards, so it never shows up in a cell's output)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def images_figure(view: LabView):
    """Before and after images of every test prompt. One seed: one column per prompt; several: one row
    per prompt and model (original, edited), one column per seed, the judged shares in the row labels."""
    if len(view.seeds) <= 1:
        return image_grid([[p.image_before for p in view.prompts], [p.image_after for p in view.prompts]],
                          row_labels=["original", "edited"], col_labels=[p.prompt for p in view.prompts])
    rows, labels = [], []
    for p in view.prompts:
        for side, images in ((0, p.images_before), (1, p.images_after)):
            rows.append(images)
            shares = ", ".join(f"{kind} {view.edited[2]} {share_text(pair[side], len(view.seeds))}"
                               for kind, pair in p.shares.items()) if view.edited else ""
            label = textwrap.fill(p.prompt, 26) + "\n" if side == 0 else ""
            labels.append(f"{label}{('original', 'edited')[side]}" + (f"\n{shares}" if shares else ""))
    return image_strips(rows, labels, [f"seed {seed}" for seed in view.seeds])


def report_html(view: LabView) -> str:
    """The per-prompt table (judged shares before -> after, attributes kept) and the edit's numbers."""
    header = "<tr><th align='left'>test prompt</th><th align='left'>judged share, original -> edited</th>" \
             "<th align='left'>attributes kept</th></tr>"
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in report_rows(view))
    numbers = numbers_text(view.numbers)
    return (f"<table style='font-size:90%'>{header}{cells}</table>"
            + (f"<div>{html.escape(numbers)}</div>" if numbers else ""))


def attention_figure(view: LabView, prompt: str):
    """Per-token attention maps of one test prompt, before and after, on one colour scale per token."""
    shown = next(p for p in view.prompts if p.prompt == prompt)
    return attention_before_after([shown.image_before, shown.image_after], [shown.maps_before, shown.maps_after],
                                  shown.spans, title=f'"{prompt}"')


def lab_widget(session: LabSession, source: str = "", destination: str = "", lamb: float = PAPER_LAMBDA,
               background: bool = True) -> widgets.VBox:
    """The lab's widget over ``session``; ``background=False`` runs actions in the caller's thread."""
    style = {"description_width": "90px"}
    source_box = widgets.Text(value=source, description="source", placeholder="a circle", style=style)
    destination_box = widgets.Text(value=destination, description="destination", placeholder="a blue circle",
                                   style=style)
    lamb_slider = widgets.FloatLogSlider(value=lamb, base=10, min=-3, max=6, step=0.25, description="lambda",
                                         readout_format=".3g", style=style)
    keys_box = widgets.Checkbox(value=True, description="edit keys (to_k)")
    values_box = widgets.Checkbox(value=True, description="edit values (to_v)")
    layers_box = widgets.SelectMultiple(options=session.layer_names, value=tuple(session.layer_names),
                                        rows=min(8, len(session.layer_names)), description="layers", style=style)
    seed_box = widgets.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed", style=style)
    prompts_box = widgets.Textarea(value="\n".join(session.prompts), description="test prompts", rows=4,
                                   placeholder="one a line, or separated by commas", style=style,
                                   layout=widgets.Layout(width="460px"))
    buttons = {name: widgets.Button(description=name) for name in ("apply", "undo", "reset")}
    message = widgets.HTML()
    state = widgets.HTML(value=f"<i>{html.escape(session.state())}</i>")
    report = widgets.HTML()
    images = widgets.Image(format="png")
    prompt_choice = widgets.Dropdown(options=session.prompts, description="attention of", style=style)
    attention = widgets.Image(format="png")
    last: dict[str, LabView] = {}

    def controls() -> LabControls:
        chosen = tuple(layers_box.value)
        return LabControls(source_box.value, destination_box.value, lamb_slider.value, keys_box.value,
                           values_box.value, None if len(chosen) == len(session.layer_names) else chosen,
                           seed_box.value, prompts_box.value)

    def show(view: LabView) -> None:
        colour = "green" if view.ok else "firebrick"
        message.value = f"<span style='color:{colour}'>{html.escape(view.message)}</span>"
        state.value = f"<i>{html.escape(view.state)}</i>"
        if view.prompts:
            last["view"] = view
            report.value = report_html(view)
            images.value = figure_png(images_figure(view))
            shown = [p.prompt for p in view.prompts]
            if list(prompt_choice.options) != shown:
                prompt_choice.options = shown  # new test prompts: the choice moves to the first one
            show_attention()

    def show_attention(*_) -> None:
        if "view" in last:
            if prompt_choice.value in [p.prompt for p in last["view"].prompts]:
                attention.value = figure_png(attention_figure(last["view"], prompt_choice.value))

    def run(action) -> None:
        for button in buttons.values():
            button.disabled = True
        message.value = "<i>drawing...</i>"
        try:
            show(action())
        except Exception as error:  # a bug, not bad input: say so in the widget instead of losing it
            message.value = f"<span style='color:firebrick'>Unexpected error: {html.escape(repr(error))}</span>"
        finally:
            for button in buttons.values():
                button.disabled = False

    def on(action):
        def handler(_button) -> None:
            if background:
                threading.Thread(target=run, args=(action,), daemon=True).start()
            else:
                run(action)
        return handler

    buttons["apply"].on_click(on(lambda: session.apply(controls())))
    buttons["undo"].on_click(on(lambda: session.undo(seed_box.value)))
    buttons["reset"].on_click(on(lambda: session.reset(seed_box.value)))
    prompt_choice.observe(show_attention, names="value")
    show(session.view(seed_box.value))  # the unedited model's images from the start, not empty frames
    settings = widgets.VBox([source_box, destination_box, lamb_slider, widgets.HBox([keys_box, values_box]),
                             layers_box, seed_box, prompts_box, widgets.HBox(list(buttons.values()))])
    return widgets.VBox([settings, message, state, report, images, prompt_choice, attention])
