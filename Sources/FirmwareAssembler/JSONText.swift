import Foundation

/// The two JSON forms fwassemble writes, one place each: documents (`--json`, reports, the C ABI's
/// results: pretty-printed) and lines (a request, a batch record: one line). Keys sorted, slashes
/// not escaped, so the same value always gives the same bytes.
public enum JSONText {
    /// Pretty-printed, keys sorted.
    public static func pretty<T: Encodable>(_ value: T) throws -> String {
        try encode(value, [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// One line, keys sorted.
    public static func line<T: Encodable>(_ value: T) throws -> String {
        try encode(value, [.sortedKeys, .withoutEscapingSlashes])
    }

    private static func encode<T: Encodable>(_ value: T, _ format: JSONEncoder.OutputFormatting) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = format
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
