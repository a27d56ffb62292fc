"""``extract_prompts`` finds exactly the prompt-bearing strings of each kind of Dify app.

The fixtures in ``tests/fixtures/dify/`` are small exports written for this project after Dify's
node definitions, one per shape: a jinja2 message and an LLM inside an iteration, a completion-model
``prompt_template`` mapping, question classifiers with ``instruction`` and legacy ``instructions``,
agent nodes, chat / completion apps with advanced prompts, a parameter extractor and an agent-chat
app. For each, the full list of prompts is spelled out field by field. Inline documents cover the
rules that need a contrast: ``instruction`` wins over ``instructions``, nodes that carry no prompt,
empty strings, integer node ids and a malformed message.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autoopt.domain.dsl import extract_prompts
from autoopt.domain.dsl_loading import DifyApp, load_dsl
from autoopt.domain.errors import DSLFormatError
from autoopt.domain.models import Prompt

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dify"


def load_fixture(name: str) -> DifyApp:
    path = FIXTURES / name
    return load_dsl(path.read_bytes(), str(path))


def load_inline(text: str) -> DifyApp:
    return load_dsl(textwrap.dedent(text), "inline.yml")


def graph_app(nodes_yaml: str, mode: str = "workflow") -> DifyApp:
    """A minimal graph app around ``nodes_yaml`` (a YAML list, indented by 4 spaces)."""
    head = f"""\
app:
  mode: {mode}
  name: Inline
kind: app
version: 0.1.5
workflow:
  graph:
    edges: []
    nodes:
"""
    return load_dsl(head + nodes_yaml, "inline.yml")


# --- the fixtures, prompt by prompt ------------------------------------------------------------


def test_jinja2_message_and_llm_inside_an_iteration() -> None:
    assert extract_prompts(load_fixture("workflow_jinja2_iteration.yml")) == [
        Prompt(
            prompt_id="段落翻译/1718000000002/prompt_template/0/jinja2_text",
            workflow_id="段落翻译",
            node_id="1718000000002",
            node_title="拆分段落",
            node_type="llm",
            field_path="/prompt_template/0/jinja2_text",
            document_path="/workflow/graph/nodes/1/data/prompt_template/0/jinja2_text",
            role="system",
            edition="jinja2",
            text=(
                "你是一名专业译者。请把下面的文章拆分为段落，目标语言：{{ target_language }}。\n"
                "{% if article | length > 8000 %}文章较长，只保留正文段落。{% endif %}\n"
                "文章：{{ article }}"
            ),
            variables=("{{ target_language }}", "{{ article }}"),
        ),
        Prompt(
            prompt_id="段落翻译/1718000000002/prompt_template/1/text",
            workflow_id="段落翻译",
            node_id="1718000000002",
            node_title="拆分段落",
            node_type="llm",
            field_path="/prompt_template/1/text",
            document_path="/workflow/graph/nodes/1/data/prompt_template/1/text",
            role="user",
            edition="basic",
            text=(
                "目标语言：{{#1718000000001.target_language#}}。"
                '只输出 JSON 对象，例如 {"paragraphs": ["..."]}。'
            ),
            variables=("{{#1718000000001.target_language#}}",),
        ),
        Prompt(
            prompt_id="段落翻译/1718000000006/prompt_template/0/text",
            workflow_id="段落翻译",
            node_id="1718000000006",
            node_title="翻译",
            node_type="llm",
            field_path="/prompt_template/0/text",
            document_path="/workflow/graph/nodes/5/data/prompt_template/0/text",
            role="system",
            edition="basic",
            text=(
                "把用户给出的段落翻译成{{#1718000000001.target_language#}}，"
                "保留原有的段落格式，不要添加解释。"
            ),
            variables=("{{#1718000000001.target_language#}}",),
        ),
        Prompt(
            prompt_id="段落翻译/1718000000006/prompt_template/1/text",
            workflow_id="段落翻译",
            node_id="1718000000006",
            node_title="翻译",
            node_type="llm",
            field_path="/prompt_template/1/text",
            document_path="/workflow/graph/nodes/5/data/prompt_template/1/text",
            role="user",
            edition="basic",
            text="{{#1718000000004.item#}}",
            variables=("{{#1718000000004.item#}}",),
        ),
    ]


def test_completion_model_prompt_template_mapping_is_one_prompt() -> None:
    assert extract_prompts(load_fixture("workflow_completion_model.yml")) == [
        Prompt(
            prompt_id="Page Summary (completion)/1718100000003/prompt_template/text",
            workflow_id="Page Summary (completion)",
            node_id="1718100000003",
            node_title="Summarize",
            node_type="llm",
            field_path="/prompt_template/text",
            document_path="/workflow/graph/nodes/2/data/prompt_template/text",
            role=None,
            edition="basic",
            text=(
                "Summarize the following page in five bullet points. Keep product names as "
                "written.\n\nPage:\n{{#1718100000002.body#}}\n\nSummary:"
            ),
            variables=("{{#1718100000002.body#}}",),
        )
    ]


def test_question_classifiers_with_instruction_and_legacy_instructions() -> None:
    def classifier(node_id: str, title: str, index: int, field: str, text: str) -> Prompt:
        variables = ("{{#sys.query#}}",) if "{{#sys.query#}}" in text else ()
        return Prompt(
            prompt_id=f"お問い合わせ窓口/{node_id}{field}",
            workflow_id="お問い合わせ窓口",
            node_id=node_id,
            node_title=title,
            node_type="question-classifier",
            field_path=field,
            document_path=f"/workflow/graph/nodes/{index}/data{field}",
            text=text,
            variables=variables,
        )

    assert extract_prompts(load_fixture("chatflow_question_classifier.yml")) == [
        classifier(
            "1718200000002",
            "質問分類器",
            1,
            "/instruction",
            "ユーザーの発言が製品・注文・請求のどれかに関係するなら「製品に関する質問」に分類してください。",
        ),
        classifier("1718200000002", "質問分類器", 1, "/classes/0/name", "製品に関する質問"),
        classifier("1718200000002", "質問分類器", 1, "/classes/1/name", "雑談・その他"),
        classifier(
            "1718200000003",
            "担当振り分け",
            2,
            "/instructions",
            "{{#sys.query#}} の内容から担当部署を判断してください。",
        ),
        classifier("1718200000003", "担当振り分け", 2, "/classes/0/name", "注文・配送"),
        classifier("1718200000003", "担当振り分け", 2, "/classes/1/name", "請求・支払い"),
        Prompt(
            prompt_id="お問い合わせ窓口/1718200000004/prompt_template/0/text",
            workflow_id="お問い合わせ窓口",
            node_id="1718200000004",
            node_title="回答生成",
            node_type="llm",
            field_path="/prompt_template/0/text",
            document_path="/workflow/graph/nodes/3/data/prompt_template/0/text",
            role="system",
            text=(
                "あなたは丁寧なサポート担当者です。分類結果「{{#1718200000003.class_name#}}」"
                "の担当として、敬語で簡潔に答えてください。"
            ),
            variables=("{{#1718200000003.class_name#}}",),
        ),
        Prompt(
            prompt_id="お問い合わせ窓口/1718200000004/memory/query_prompt_template",
            workflow_id="お問い合わせ窓口",
            node_id="1718200000004",
            node_title="回答生成",
            node_type="llm",
            field_path="/memory/query_prompt_template",
            document_path="/workflow/graph/nodes/3/data/memory/query_prompt_template",
            text="{{#sys.query#}}",
            variables=("{{#sys.query#}}",),
        ),
    ]


def test_agent_string_parameters_are_prompts_and_a_variable_selector_is_not() -> None:
    assert extract_prompts(load_fixture("workflow_agent.yml")) == [
        Prompt(
            prompt_id="出行助手/1718300000002/agent_parameters/instruction/value",
            workflow_id="出行助手",
            node_id="1718300000002",
            node_title="天气 Agent",
            node_type="agent",
            field_path="/agent_parameters/instruction/value",
            document_path="/workflow/graph/nodes/1/data/agent_parameters/instruction/value",
            text="你是出行助手。先调用天气工具查询城市天气，再给出三条出行建议。",
        ),
        Prompt(
            prompt_id="出行助手/1718300000002/agent_parameters/query/value",
            workflow_id="出行助手",
            node_id="1718300000002",
            node_title="天气 Agent",
            node_type="agent",
            field_path="/agent_parameters/query/value",
            document_path="/workflow/graph/nodes/1/data/agent_parameters/query/value",
            text="城市：{{#1718300000001.city#}}",
            variables=("{{#1718300000001.city#}}",),
        ),
        Prompt(
            prompt_id="出行助手/1718300000003/agent_parameters/instruction/value",
            workflow_id="出行助手",
            node_id="1718300000003",
            node_title="改写 Agent",
            node_type="agent",
            field_path="/agent_parameters/instruction/value",
            document_path="/workflow/graph/nodes/2/data/agent_parameters/instruction/value",
            text="把上一步的建议改写成一段不超过一百字的提醒。",
        ),
    ]


def test_chat_app_with_advanced_prompt_lists_pre_prompt_and_chat_messages() -> None:
    assert extract_prompts(load_fixture("chat_advanced_prompt.yml")) == [
        Prompt(
            prompt_id="面试练习/@app/model_config/pre_prompt",
            workflow_id="面试练习",
            node_id=None,
            node_title=None,
            node_type="model_config",
            field_path="/model_config/pre_prompt",
            document_path="/model_config/pre_prompt",
            text="",
        ),
        Prompt(
            prompt_id="面试练习/@app/model_config/chat_prompt_config/prompt/0/text",
            workflow_id="面试练习",
            node_id=None,
            node_title=None,
            node_type="model_config",
            field_path="/model_config/chat_prompt_config/prompt/0/text",
            document_path="/model_config/chat_prompt_config/prompt/0/text",
            role="system",
            text=(
                "你是一名{{#context#}}方向的面试官。每次只问一个问题，根据候选人 {{name}} "
                "的回答追问，不要直接给出答案。"
            ),
            variables=("{{#context#}}", "{{name}}"),
        ),
    ]


def test_completion_app_with_advanced_prompt_lists_the_completion_prompt() -> None:
    assert extract_prompts(load_fixture("completion_advanced_prompt.yml")) == [
        Prompt(
            prompt_id="Release Notes Rewriter/@app/model_config/pre_prompt",
            workflow_id="Release Notes Rewriter",
            node_id=None,
            node_title=None,
            node_type="model_config",
            field_path="/model_config/pre_prompt",
            document_path="/model_config/pre_prompt",
            text="",
        ),
        Prompt(
            prompt_id=(
                "Release Notes Rewriter/@app/model_config/completion_prompt_config/prompt/text"
            ),
            workflow_id="Release Notes Rewriter",
            node_id=None,
            node_title=None,
            node_type="model_config",
            field_path="/model_config/completion_prompt_config/prompt/text",
            document_path="/model_config/completion_prompt_config/prompt/text",
            text=(
                "Rewrite the release notes below for {{audience}}. Keep version numbers and the "
                'JSON example {"version": "1.2.0"} unchanged.\n\n{{#context#}}\n\nNotes:\n{{notes}}'
            ),
            variables=("{{audience}}", "{{#context#}}", "{{notes}}"),
        ),
    ]


def test_parameter_extractor_lists_instruction_and_every_parameter_description() -> None:
    def extractor(field: str, text: str, variables: tuple[str, ...] = ()) -> Prompt:
        return Prompt(
            prompt_id=f"予約情報の抽出/1718400000002{field}",
            workflow_id="予約情報の抽出",
            node_id="1718400000002",
            node_title="パラメータ抽出",
            node_type="parameter-extractor",
            field_path=field,
            document_path=f"/workflow/graph/nodes/1/data{field}",
            text=text,
            variables=variables,
        )

    assert extract_prompts(load_fixture("workflow_parameter_extractor.yml")) == [
        extractor(
            "/instruction",
            "日付は YYYY-MM-DD 形式で答えてください。今日は {{#sys.timestamp#}} です。",
            ("{{#sys.timestamp#}}",),
        ),
        extractor("/parameters/0/description", "予約する日付"),
        extractor("/parameters/1/description", "人数（大人と子どもの合計）"),
        extractor("/parameters/2/description", ""),
    ]


def test_agent_chat_app_lists_its_pre_prompt() -> None:
    assert extract_prompts(load_fixture("agent_chat_app.yml")) == [
        Prompt(
            prompt_id="株価アシスタント/@app/model_config/pre_prompt",
            workflow_id="株価アシスタント",
            node_id=None,
            node_title=None,
            node_type="model_config",
            field_path="/model_config/pre_prompt",
            document_path="/model_config/pre_prompt",
            text=(
                "あなたは{{company}}の株価を調べるアシスタントです。ツールで直近の株価を取得し、\n"
                "1. 値動きの要約\n2. 注意すべきニュース\n"
                "の順に日本語で答えてください。投資の助言はしないでください。"
            ),
            variables=("{{company}}",),
        )
    ]


# --- rules that need a contrast ----------------------------------------------------------------


def test_jinja2_message_prompt_is_its_jinja2_text_not_its_basic_text() -> None:
    app = load_fixture("workflow_jinja2_iteration.yml")
    message = app.document["workflow"]["graph"]["nodes"][1]["data"]["prompt_template"][0]
    assert message["edition_type"] == "jinja2"

    prompts = {p.field_path: p for p in extract_prompts(app) if p.node_id == "1718000000002"}

    assert "/prompt_template/0/text" not in prompts
    jinja = prompts["/prompt_template/0/jinja2_text"]
    assert (jinja.edition, jinja.text) == ("jinja2", message["jinja2_text"])
    assert jinja.text != message["text"]
    # `{{ var }}` expressions are references in jinja2 text; `{% if %}` is not.
    assert jinja.variables == ("{{ target_language }}", "{{ article }}")


def test_jinja2_edition_finds_spaced_expressions_that_basic_edition_ignores() -> None:
    text = "Hello {{ name }}, {{#sys.query#}} {{legacy}}"
    app = graph_app(
        f"""\
    - id: '1'
      type: custom
      data:
        type: llm
        title: L
        prompt_template:
        - role: system
          edition_type: jinja2
          text: ''
          jinja2_text: '{text}'
        - role: user
          text: '{text}'
    """
    )

    jinja, basic = extract_prompts(app)

    assert jinja.variables == ("{{ name }}", "{{#sys.query#}}", "{{legacy}}")
    assert basic.variables == ("{{#sys.query#}}", "{{legacy}}")


def test_instruction_is_preferred_over_legacy_instructions_when_both_exist() -> None:
    app = graph_app(
        """\
    - id: '1718600000001'
      type: custom
      data:
        type: question-classifier
        title: Classifier
        instruction: Prefer billing when money is mentioned.
        instructions: Stale legacy instruction.
        classes:
        - id: '1'
          name: Billing
    """
    )

    prompts = extract_prompts(app)

    assert [(p.field_path, p.text) for p in prompts] == [
        ("/instruction", "Prefer billing when money is mentioned."),
        ("/classes/0/name", "Billing"),
    ]


NODES_WITHOUT_PROMPTS = """\
    - id: '1718700000001'
      type: custom
      data:
        type: start
        title: Start
        variables: []
    - id: '1718700000002'
      type: custom
      data:
        type: code
        title: Code
        code: "def main(x: str) -> dict:\\n    return {'result': '{{#sys.query#}}' + x}\\n"
        code_language: python3
        variables: []
    - id: '1718700000003'
      type: custom
      data:
        type: http-request
        title: HTTP
        method: post
        url: 'https://example.com/{{#1718700000001.path#}}'
        body:
          type: json
          data: '{"q": "{{#sys.query#}}"}'
    - id: '1718700000004'
      type: custom
      data:
        type: template-transform
        title: Template
        template: 'Summary: {{ text }} {{#sys.query#}}'
        variables: []
    - id: '1718700000005'
      type: custom
      data:
        type: answer
        title: Answer
        answer: 'You asked: {{#sys.query#}}'
    - id: '1718700000006'
      type: custom-note
      data:
        type: ''
        title: ''
        text: 'Remember to ask about {{#sys.query#}} politely.'
        instruction: A note is never a prompt.
    """


def test_notes_answers_templates_code_and_http_nodes_carry_no_prompts() -> None:
    app = graph_app(NODES_WITHOUT_PROMPTS, mode="advanced-chat")

    assert extract_prompts(app) == []


def test_fixture_nodes_without_prompts_contribute_none() -> None:
    silent_types = {"start", "end", "answer", "code", "http-request", "template-transform"}
    for path in sorted(FIXTURES.glob("*.yml")):
        app = load_fixture(path.name)
        nodes = app.document.get("workflow", {}).get("graph", {}).get("nodes", [])
        silent = {
            str(n["id"])
            for n in nodes
            if n.get("type") == "custom-note"
            or n["data"].get("type") in silent_types | {"iteration", "iteration-start"}
        }
        assert not {p.node_id for p in extract_prompts(app)} & silent, path.name


def test_empty_and_blank_strings_are_listed_and_marked_empty() -> None:
    chat = extract_prompts(load_fixture("chat_advanced_prompt.yml"))
    extractor = extract_prompts(load_fixture("workflow_parameter_extractor.yml"))
    blank = extract_prompts(
        load_inline(
            """\
            app:
              mode: chat
              name: Blank
            model_config:
              pre_prompt: "  \\n\\t"
            """
        )
    )

    assert [(p.field_path, p.empty) for p in chat] == [
        ("/model_config/pre_prompt", True),
        ("/model_config/chat_prompt_config/prompt/0/text", False),
    ]
    assert [p.empty for p in extractor] == [False, False, False, True]
    assert [(p.text, p.empty) for p in blank] == [("  \n\t", True)]


def test_integer_node_id_becomes_a_string_node_id() -> None:
    app = graph_app(
        """\
    - id: 1718800000001
      type: custom
      data:
        type: parameter-extractor
        title: Extract
        instruction: Extract the city.
    """
    )

    (prompt,) = extract_prompts(app)

    assert prompt.node_id == "1718800000001"
    assert prompt.prompt_id == "Inline/1718800000001/instruction"


def test_missing_app_level_configs_yield_only_what_is_present() -> None:
    app = load_inline(
        """\
        app:
          mode: completion
          name: '  Spaced   Name  '
        model_config:
          pre_prompt: 'Translate {{text}}'
          chat_prompt_config: {}
          completion_prompt_config: {}
        """
    )

    (prompt,) = extract_prompts(app)

    assert prompt.prompt_id == "Spaced Name/@app/model_config/pre_prompt"
    assert prompt.variables == ("{{text}}",)


def test_message_with_a_non_string_text_is_refused_naming_source_and_place() -> None:
    app = graph_app(
        """\
    - id: '1'
      type: custom
      data:
        type: llm
        title: L
        prompt_template:
        - role: system
          text: 42
    """
    )

    with pytest.raises(DSLFormatError, match=r"^inline\.yml: .*prompt_template\[0\]\.text"):
        extract_prompts(app)


def test_prompt_ids_are_unique_and_document_paths_reach_the_text_in_every_fixture() -> None:
    for path in sorted(FIXTURES.glob("*.yml")):
        app = load_fixture(path.name)
        prompts = extract_prompts(app)
        assert len({p.prompt_id for p in prompts}) == len(prompts), path.name
        for prompt in prompts:
            value = app.document
            for part in prompt.document_path[1:].split("/"):
                value = value[int(part)] if isinstance(value, list) else value[part]
            assert value == prompt.text, prompt.prompt_id
