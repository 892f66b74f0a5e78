//! Token usage read from a model's answer while it streams past, fed chunk by chunk.
//!
//! OpenAI streams report usage once, in a last chunk (sent when the request sets
//! `stream_options.include_usage`). Anthropic streams report the input in `message_start` and
//! the cumulative output in `message_delta`. An answer that is not streamed carries `usage` in
//! its JSON body.

use serde_json::Value;

/// A line, event or body bigger than this is skipped rather than buffered: no usage report comes
/// near it, and the meter must not hold an unbounded amount of memory.
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

const BOM: &[u8] = "\u{feff}".as_bytes();

/// The provider wire format a model call speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmApi {
    OpenAi,
    Anthropic,
}

impl LlmApi {
    /// The name stored with each usage event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// How an answer's body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events: a streamed answer.
    Sse,
    /// One JSON document: an answer that is not streamed, or an error.
    Json,
}

impl Framing {
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let media_type = content_type.and_then(|ct| ct.split(';').next()).map(str::trim);
        if media_type.is_some_and(|m| m.eq_ignore_ascii_case("text/event-stream")) { Self::Sse } else { Self::Json }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Every prompt token, however it was priced: OpenAI's `prompt_tokens`, or Anthropic's
    /// `input_tokens` plus the cache reads and writes it reports separately.
    pub input_tokens: u64,
    /// The part of `input_tokens` served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
}

/// What a meter learnt from one answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub usage: Usage,
    /// The provider's final usage report was seen: OpenAI's usage chunk, Anthropic's
    /// `message_delta`, or `usage` in a JSON body. Without it `usage` is only a lower bound.
    pub reported: bool,
}

/// Reads usage from an answer's bytes as they arrive, whatever the chunk boundaries.
pub struct UsageMeter {
    api: LlmApi,
    framing: Framing,
    /// The SSE line being read; a line longer than the limit is dropped and marks its event.
    line: Vec<u8>,
    line_too_long: bool,
    /// The last byte ended a line with `\r`; a `\n` next (even in the next chunk) is part of it.
    after_cr: bool,
    at_first_line: bool,
    /// The `data:` lines of the current event, each followed by `\n`.
    data: Vec<u8>,
    event_too_long: bool,
    /// The whole body, when it is one JSON document.
    body: Vec<u8>,
    body_too_long: bool,
    reading: Reading,
}

impl UsageMeter {
    pub fn new(api: LlmApi, framing: Framing) -> Self {
        Self {
            api,
            framing,
            line: Vec::new(),
            line_too_long: false,
            after_cr: false,
            at_first_line: true,
            data: Vec::new(),
            event_too_long: false,
            body: Vec::new(),
            body_too_long: false,
            reading: Reading::default(),
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        match self.framing {
            Framing::Sse => self.feed_sse(bytes),
            Framing::Json => self.feed_json(bytes),
        }
    }

    /// The reading once the answer is over. A last event missing its blank line still counts:
    /// for billing, a complete report is worth more than the letter of the SSE spec.
    pub fn finish(mut self) -> Reading {
        match self.framing {
            Framing::Sse => {
                if !self.line.is_empty() || self.line_too_long {
                    self.end_line();
                }
                self.dispatch_event();
            }
            Framing::Json => {
                if !self.body_too_long
                    && let Ok(body) = serde_json::from_slice::<Value>(&self.body)
                    && let Some(usage) = body.get("usage")
                {
                    self.read_usage(usage);
                }
            }
        }
        self.reading
    }

    fn feed_json(&mut self, bytes: &[u8]) {
        if self.body_too_long {
            return;
        }
        if self.body.len() + bytes.len() > MAX_BUFFERED {
            self.body_too_long = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(bytes);
    }

    fn feed_sse(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if std::mem::take(&mut self.after_cr) && bytes[0] == b'\n' {
                bytes = &bytes[1..];
                continue;
            }
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.push_line(&bytes[..end]);
                    self.after_cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    self.end_line();
                }
                None => {
                    self.push_line(bytes);
                    return;
                }
            }
        }
    }

    fn push_line(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > MAX_BUFFERED {
            self.line_too_long = true;
            self.line = Vec::new();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.line_too_long) {
            self.event_too_long = true;
            return;
        }
        if std::mem::take(&mut self.at_first_line) && line.starts_with(BOM) {
            line.drain(..BOM.len());
        }
        if line.is_empty() {
            self.dispatch_event();
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => (&line[..colon], &line[colon + 1..]),
            None => (&line[..], &[][..]),
        };
        if field != b"data" || self.event_too_long {
            return;
        }
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if self.data.len() + value.len() + 1 > MAX_BUFFERED {
            self.event_too_long = true;
            self.data = Vec::new();
            return;
        }
        self.data.extend_from_slice(value);
        self.data.push(b'\n');
        // Keep the allocation: most lines are the same size.
        line.clear();
        self.line = line;
    }

    fn dispatch_event(&mut self) {
        let skip = std::mem::take(&mut self.event_too_long);
        let event = match self.data.split_last() {
            Some((_newline, data)) if !skip && data != b"[DONE]" => serde_json::from_slice::<Value>(data).ok(),
            _ => None,
        };
        self.data.clear();
        if let Some(event) = event {
            self.read_event(&event);
        }
    }

    fn read_event(&mut self, event: &Value) {
        match self.api {
            LlmApi::OpenAi => {
                if let Some(usage) = event.get("usage") {
                    self.read_usage(usage);
                }
            }
            LlmApi::Anthropic => match event.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    if let Some(usage) = event.pointer("/message/usage") {
                        self.merge_anthropic(usage);
                    }
                }
                Some("message_delta") => {
                    if let Some(usage) = event.get("usage") {
                        self.read_usage(usage);
                    }
                }
                _ => {}
            },
        }
    }

    /// A final usage report: the last OpenAI chunk, Anthropic's `message_delta`, or a JSON body's.
    fn read_usage(&mut self, usage: &Value) {
        let reported = match self.api {
            LlmApi::OpenAi => self.read_openai(usage),
            LlmApi::Anthropic => self.merge_anthropic(usage),
        };
        self.reading.reported |= reported;
    }

    /// OpenAI reports totals, so the latest report replaces what came before.
    fn read_openai(&mut self, usage: &Value) -> bool {
        let prompt = usage.get("prompt_tokens").and_then(Value::as_u64);
        let completion = usage.get("completion_tokens").and_then(Value::as_u64);
        if prompt.is_none() && completion.is_none() {
            return false;
        }
        self.reading.usage = Usage {
            input_tokens: prompt.unwrap_or(0),
            cached_input_tokens: usage
                .pointer("/prompt_tokens_details/cached_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            output_tokens: completion.unwrap_or(0),
        };
        true
    }

    /// Anthropic's counts are cumulative, and a later event may leave out (or zero) what an
    /// earlier one said, so each count keeps its highest value.
    fn merge_anthropic(&mut self, usage: &Value) -> bool {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64);
        let (uncached, cache_write, cache_read, output) = (
            count("input_tokens"),
            count("cache_creation_input_tokens"),
            count("cache_read_input_tokens"),
            count("output_tokens"),
        );
        if [uncached, cache_write, cache_read, output].iter().all(Option::is_none) {
            return false;
        }
        let cache_read = cache_read.unwrap_or(0);
        let input = uncached.unwrap_or(0).saturating_add(cache_write.unwrap_or(0)).saturating_add(cache_read);
        let seen = &mut self.reading.usage;
        seen.input_tokens = seen.input_tokens.max(input);
        seen.cached_input_tokens = seen.cached_input_tokens.max(cache_read);
        seen.output_tokens = seen.output_tokens.max(output.unwrap_or(0));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI_STREAM: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",",
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",",
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",",
        "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",",
        "\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":42,\"total_tokens\":1242,",
        "\"prompt_tokens_details\":{\"cached_tokens\":1024}}}\n\n",
        "data: [DONE]\n\n",
    );

    const OPENAI_USAGE: Usage = Usage { input_tokens: 1200, cached_input_tokens: 1024, output_tokens: 42 };

    const ANTHROPIC_STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",",
        "\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,",
        "\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},",
        "\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    const ANTHROPIC_USAGE: Usage =
        Usage { input_tokens: 25 + 100 + 2000, cached_input_tokens: 2000, output_tokens: 15 };

    const OPENAI_JSON: &str = r#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"gpt-4o-mini",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#;

    const ANTHROPIC_JSON: &str = r#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-5",
        "content":[{"type":"text","text":"Hi there"}],"stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":4}}"#;

    fn read_in_chunks(api: LlmApi, framing: Framing, chunks: &[&[u8]]) -> Reading {
        let mut meter = UsageMeter::new(api, framing);
        for chunk in chunks {
            meter.feed(chunk);
        }
        meter.finish()
    }

    fn read_whole(api: LlmApi, framing: Framing, body: &str) -> Reading {
        read_in_chunks(api, framing, &[body.as_bytes()])
    }

    fn reported(usage: Usage) -> Reading {
        Reading { usage, reported: true }
    }

    /// Every way of cutting the body in two, and byte by byte, reads the same as the whole.
    fn assert_split_anywhere_reads(api: LlmApi, framing: Framing, body: &str, expected: Reading) {
        let bytes = body.as_bytes();
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(read_in_chunks(api, framing, &[a, b]), expected, "cut at byte {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read_in_chunks(api, framing, &singles), expected, "byte by byte");
    }

    fn with_line_endings(body: &str, ending: &str) -> String {
        body.replace('\n', ending)
    }

    #[test]
    fn openai_stream_usage_comes_from_the_last_chunk() {
        assert_eq!(read_whole(LlmApi::OpenAi, Framing::Sse, OPENAI_STREAM), reported(OPENAI_USAGE));
    }

    #[test]
    fn anthropic_stream_adds_cache_tokens_to_the_input_and_takes_the_cumulative_output() {
        assert_eq!(read_whole(LlmApi::Anthropic, Framing::Sse, ANTHROPIC_STREAM), reported(ANTHROPIC_USAGE));
    }

    #[test]
    fn streams_read_the_same_however_they_are_split() {
        assert_split_anywhere_reads(LlmApi::OpenAi, Framing::Sse, OPENAI_STREAM, reported(OPENAI_USAGE));
        assert_split_anywhere_reads(LlmApi::Anthropic, Framing::Sse, ANTHROPIC_STREAM, reported(ANTHROPIC_USAGE));
    }

    #[test]
    fn crlf_and_cr_line_endings_read_the_same_however_they_are_split() {
        for ending in ["\r\n", "\r"] {
            assert_split_anywhere_reads(
                LlmApi::OpenAi,
                Framing::Sse,
                &with_line_endings(OPENAI_STREAM, ending),
                reported(OPENAI_USAGE),
            );
            assert_split_anywhere_reads(
                LlmApi::Anthropic,
                Framing::Sse,
                &with_line_endings(ANTHROPIC_STREAM, ending),
                reported(ANTHROPIC_USAGE),
            );
        }
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_ending_not_two() {
        // Were "\r" | "\n" read as two endings, the blank line would end the event early.
        let body = "data: {\"usage\":\r\ndata: {\"prompt_tokens\":1,\"completion_tokens\":2}}\r\n\r\n";
        let cut = body.find("\r\n").unwrap() + 1;
        let (a, b) = body.as_bytes().split_at(cut);
        let reading = read_in_chunks(LlmApi::OpenAi, Framing::Sse, &[a, b]);
        assert_eq!(reading.usage.output_tokens, 2);
    }

    #[test]
    fn json_bodies_read_the_same_however_they_are_split() {
        assert_split_anywhere_reads(
            LlmApi::OpenAi,
            Framing::Json,
            OPENAI_JSON,
            reported(Usage { input_tokens: 9, cached_input_tokens: 0, output_tokens: 2 }),
        );
        assert_split_anywhere_reads(
            LlmApi::Anthropic,
            Framing::Json,
            ANTHROPIC_JSON,
            reported(Usage { input_tokens: 15, cached_input_tokens: 3, output_tokens: 4 }),
        );
    }

    #[test]
    fn an_openai_stream_without_its_usage_chunk_is_not_reported() {
        let cut = OPENAI_STREAM.find("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],").unwrap();
        assert_eq!(
            read_whole(LlmApi::OpenAi, Framing::Sse, &OPENAI_STREAM[..cut]),
            Reading::default(),
            "`usage: null` chunks are not a report"
        );
    }

    #[test]
    fn an_anthropic_stream_cut_before_message_delta_keeps_a_lower_bound() {
        let cut = ANTHROPIC_STREAM.find("event: message_delta").unwrap();
        assert_eq!(
            read_whole(LlmApi::Anthropic, Framing::Sse, &ANTHROPIC_STREAM[..cut]),
            Reading { usage: Usage { output_tokens: 1, ..ANTHROPIC_USAGE }, reported: false }
        );
    }

    #[test]
    fn a_stream_cut_inside_the_usage_event_is_not_reported() {
        let cut = OPENAI_STREAM.find("\"completion_tokens\"").unwrap();
        assert!(!read_whole(LlmApi::OpenAi, Framing::Sse, &OPENAI_STREAM[..cut]).reported);
    }

    #[test]
    fn a_message_delta_that_repeats_or_zeroes_the_input_does_not_lower_it() {
        let body = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":500,\"output_tokens\":1}}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":7}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":500,\"output_tokens\":9}}\n\n",
        );
        assert_eq!(
            read_whole(LlmApi::Anthropic, Framing::Sse, body),
            reported(Usage { input_tokens: 500, cached_input_tokens: 0, output_tokens: 9 })
        );
    }

    #[test]
    fn the_latest_openai_report_wins() {
        // Some OpenAI-compatible servers send running totals on every chunk.
        let body = concat!(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1}}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}\n\n",
        );
        assert_eq!(read_whole(LlmApi::OpenAi, Framing::Sse, body).usage.output_tokens, 5);
    }

    #[test]
    fn sse_details_follow_the_spec() {
        let body = concat!(
            "\u{feff}: a comment line\n",
            "retry: 1000\n",
            "id: 7\n",
            "data:{\"choices\":[],\n",
            "data:  \"usage\":{\"prompt_tokens\":3,\n",
            "data: \"completion_tokens\":4}}\n",
            "\n",
        );
        assert_eq!(
            read_whole(LlmApi::OpenAi, Framing::Sse, body),
            reported(Usage { input_tokens: 3, cached_input_tokens: 0, output_tokens: 4 }),
            "a BOM, comments and other fields are skipped; data lines are joined with newlines"
        );
    }

    #[test]
    fn a_last_event_without_its_blank_line_still_counts() {
        let body = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
        assert!(read_whole(LlmApi::OpenAi, Framing::Sse, body).reported);
        assert!(read_whole(LlmApi::OpenAi, Framing::Sse, &format!("{body}\n")).reported);
    }

    #[test]
    fn garbage_and_foreign_events_are_ignored() {
        let body = format!(
            "data: not json\n\ndata: [1,2]\n\ndata: {{\"usage\":\"lots\"}}\n\nevent: error\ndata: {{\"type\":\"error\"}}\n\n{OPENAI_STREAM}"
        );
        assert_eq!(read_whole(LlmApi::OpenAi, Framing::Sse, &body), reported(OPENAI_USAGE));
        assert_eq!(
            read_whole(LlmApi::Anthropic, Framing::Sse, OPENAI_STREAM),
            Reading::default(),
            "an OpenAI stream read as Anthropic has no Anthropic usage events"
        );
    }

    #[test]
    fn error_and_truncated_json_bodies_are_not_reported() {
        let error = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(read_whole(LlmApi::OpenAi, Framing::Json, error), Reading::default());
        let anthropic_error = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(read_whole(LlmApi::Anthropic, Framing::Json, anthropic_error), Reading::default());
        let truncated = &OPENAI_JSON[..OPENAI_JSON.len() - 2];
        assert_eq!(read_whole(LlmApi::OpenAi, Framing::Json, truncated), Reading::default());
        assert_eq!(read_whole(LlmApi::OpenAi, Framing::Json, ""), Reading::default());
    }

    #[test]
    fn oversized_lines_and_events_are_skipped_and_reading_goes_on() {
        let huge = "x".repeat(MAX_BUFFERED + 1);
        let body = format!("data: {huge}\n\n{OPENAI_STREAM}");
        let bytes = body.as_bytes();
        let (a, b) = bytes.split_at(bytes.len() / 3);
        assert_eq!(read_in_chunks(LlmApi::OpenAi, Framing::Sse, &[a, b]), reported(OPENAI_USAGE));
        let half = "y".repeat(MAX_BUFFERED / 2 + 1);
        let body = format!("data: {half}\ndata: {half}\n\n{OPENAI_STREAM}");
        assert_eq!(
            read_whole(LlmApi::OpenAi, Framing::Sse, &body),
            reported(OPENAI_USAGE),
            "an event whose data lines add up past the limit is skipped"
        );
        let mut meter = UsageMeter::new(LlmApi::OpenAi, Framing::Json);
        meter.feed(huge.as_bytes());
        meter.feed(OPENAI_JSON.as_bytes());
        assert_eq!(meter.finish(), Reading::default(), "an oversized body is not read");
    }

    #[test]
    fn framing_follows_the_media_type() {
        for sse in ["text/event-stream", "text/event-stream; charset=utf-8", "Text/Event-Stream"] {
            assert_eq!(Framing::from_content_type(Some(sse)), Framing::Sse, "{sse}");
        }
        for json in ["application/json", "text/plain", ""] {
            assert_eq!(Framing::from_content_type(Some(json)), Framing::Json, "{json}");
        }
        assert_eq!(Framing::from_content_type(None), Framing::Json);
    }

    #[test]
    fn api_names_match_the_usage_events_table() {
        assert_eq!(LlmApi::OpenAi.as_str(), "openai");
        assert_eq!(LlmApi::Anthropic.as_str(), "anthropic");
    }
}
