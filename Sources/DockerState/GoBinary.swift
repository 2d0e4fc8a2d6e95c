import Foundation

/// The Go encodings containerd stores in its bbolt records (encoding/binary varints, and
/// time.Time's MarshalBinary), decoded with bounds and overflow checks: nil when malformed.
enum GoBinary {
    /// encoding/binary Uvarint: 7 bits a byte, low first, at most 10 bytes, no overflow.
    static func uvarint(_ bytes: [UInt8]) -> UInt64? {
        var value: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            guard i < 10 else { return nil }
            if i == 9, b > 1 { return nil }
            value |= UInt64(b & 0x7F) << (7 * UInt64(i))
            if b < 0x80 { return i + 1 == bytes.count ? value : nil }
        }
        return nil
    }

    /// encoding/binary Varint: zig-zag over Uvarint.
    static func varint(_ bytes: [UInt8]) -> Int64? {
        guard let u = uvarint(bytes) else { return nil }
        let x = Int64(bitPattern: u >> 1)
        return u & 1 == 0 ? x : ~x
    }

    /// time.Time.MarshalBinary (version 1: seconds since year 1 as u64 BE, nanoseconds u32 BE,
    /// zone offset in minutes i16 BE; version 2 adds a seconds-of-offset byte), as RFC 3339 UTC
    /// with the nanoseconds Go prints ("2026-01-20T10:00:00.123456789Z").
    static func time(_ bytes: [UInt8]) -> String? {
        guard let version = bytes.first, (version == 1 && bytes.count == 15) || (version == 2 && bytes.count == 16) else { return nil }
        var sec: UInt64 = 0
        for i in 1...8 { sec = sec << 8 | UInt64(bytes[i]) }
        var nsec: UInt32 = 0
        for i in 9...12 { nsec = nsec << 8 | UInt32(bytes[i]) }
        guard nsec < 1_000_000_000, sec >= 62_135_596_800, sec < 62_135_596_800 + 253_402_300_800 else { return nil }
        let unix = Int64(sec - 62_135_596_800)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(unix)))
        guard let y = c.year, let mo = c.month, let d = c.day, let h = c.hour, let mi = c.minute, let s = c.second else { return nil }
        var text = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d, h, mi, s)
        if nsec > 0 {
            var frac = String(format: "%09d", nsec)
            while frac.hasSuffix("0") { frac.removeLast() }
            text += "." + frac
        }
        return text + "Z"
    }
}
