import DiskImage
import Testing

@Suite("ByteCursor: one integer reader")
struct ByteCursorTests {
    let c = ByteCursor([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xFF], context: "test record")

    @Test("integer(at:endianness:as:) reads every width in both byte orders")
    func widths() throws {
        #expect(try c.integer(at: 0, endianness: .little, as: UInt16.self) == 0x0201)
        #expect(try c.integer(at: 0, endianness: .big, as: UInt16.self) == 0x0102)
        #expect(try c.integer(at: 1, endianness: .little, as: UInt32.self) == 0x0504_0302)
        #expect(try c.integer(at: 1, endianness: .big, as: UInt32.self) == 0x0203_0405)
        #expect(try c.integer(at: 0, endianness: .little, as: UInt64.self) == 0x0807_0605_0403_0201)
        #expect(try c.integer(at: 0, endianness: .big, as: UInt64.self) == 0x0102_0304_0506_0708)
        #expect(try c.integer(at: 8, endianness: .big, as: Int8.self) == -1)
        #expect(try c.u32be(at: 1) == 0x0203_0405)
        #expect(try c.u16le(at: 7) == 0xFF08)
    }

    @Test("out of bounds: the throwing form throws .corrupt, the optional form returns nil")
    func bounds() {
        #expect(throws: FWError.self) { try c.integer(at: 6, endianness: .little, as: UInt32.self) }
        #expect(throws: FWError.self) { try c.integer(at: -1, endianness: .little, as: UInt8.self) }
        #expect(c.integerIfPresent(at: 6, endianness: .little, as: UInt32.self) == nil)
        #expect(c.integerIfPresent(at: Int.max, endianness: .big, as: UInt64.self) == nil)
        #expect(c.integerIfPresent(at: 5, endianness: .little, as: UInt32.self) == 0xFF08_0706)
        #expect(c.matches([0x03, 0x04], at: 2))
        #expect(!c.matches([0x03, 0x04], at: 8))
    }
}
