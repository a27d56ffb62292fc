"""Language models behind the domain's ``LLMRewriter`` port: the OpenAI SDK client,
its meta-prompts, the response cache and the price table."""
