@testable import DockerState
import Testing

/// containerd's record encodings: Go's encoding/binary varints and time.MarshalBinary.
@Suite struct GoBinaryTests {
    @Test func varints() {
        #expect(GoBinary.uvarint([0x07]) == 7)
        #expect(GoBinary.uvarint([0xAC, 0x02]) == 300)
        #expect(GoBinary.uvarint([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) == UInt64.max)
        // absurd: 11 bytes, overflow in the tenth, unterminated, trailing bytes
        #expect(GoBinary.uvarint([UInt8](repeating: 0xFF, count: 10) + [0x01]) == nil)
        #expect(GoBinary.uvarint([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]) == nil)
        #expect(GoBinary.uvarint([0x80]) == nil)
        #expect(GoBinary.uvarint([0x01, 0x02]) == nil)
        #expect(GoBinary.uvarint([]) == nil)
        // zig-zag: 351 is stored as 702 (0xBE 0x05); -1 as 1
        #expect(GoBinary.varint([0xBE, 0x05]) == 351)
        #expect(GoBinary.varint([0x01]) == -1)
    }

    @Test func times() {
        // Go: time.Date(2026, 1, 20, 10, 0, 0, 123456789, time.UTC).MarshalBinary()
        let sec = UInt64(62_135_596_800 + 1_768_903_200)
        var bytes: [UInt8] = [1]
        for i in (0..<8).reversed() { bytes.append(UInt8(truncatingIfNeeded: sec >> (8 * UInt64(i)))) }
        for i in (0..<4).reversed() { bytes.append(UInt8(truncatingIfNeeded: UInt32(123_456_789) >> (8 * UInt32(i)))) }
        bytes += [0xFF, 0xFF]   // offset -1: UTC
        #expect(GoBinary.time(bytes) == "2026-01-20T10:00:00.123456789Z")
        #expect(GoBinary.time(Array(bytes.dropLast())) == nil)
        #expect(GoBinary.time([3] + bytes.dropFirst()) == nil)
    }
}
