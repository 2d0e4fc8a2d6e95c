import DiskFormats
import DiskImage
import Testing
import TestSupport

/// The one table of container and wrapper magics (`DiskImageMagic`) that the opener and the
/// sniffer share: each test image's first bytes name the format the opener reports, and the
/// sniffer says the same.
@Suite("Disk image magic table")
struct DiskImageMagicTests {
    @Test("the first bytes name the opened format", arguments: DiskFormatsTests.identical)
    func tableNamesTheOpenedFormat(name: String, format: String) throws {
        let path = try TestImages.path(name)
        let file = try FileSource(path: path)
        let magic = DiskImageMagic.detect(try file.bytes(at: 0, count: Int(min(file.size, 1024))))
        let outer = format.split(separator: "+").first.map(String.init) ?? format
        switch outer {
        case "raw":
            #expect(magic == nil)
        case "vpc" where magic == nil:
            // A fixed VHD has only its footer.
            #expect(try DiskImageMagic.hasVHDFooter(file))
        case "xz", "gzip", "zstd", "zip", "tar":
            #expect(magic?.rawValue == outer)
            #expect(magic?.container == nil)
        default:
            #expect(magic?.container == outer)
        }
        switch sniffDiskImage(file) {
        case .container(let sniffed): #expect(sniffed == format)
        case .wrapped(let wrappers, _): #expect(wrappers + "+raw" == format)
        case .raw: #expect(format == "raw")
        case .unreadable(let why): Issue.record("sniffed as unreadable: \(why)")
        }
    }

    @Test("each magic is found at its offset and nowhere else")
    func eachMagicAtItsOffset() {
        for (magic, offset, bytes) in DiskImageMagic.table {
            var head = [UInt8](repeating: 0, count: 1024)
            head.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            #expect(DiskImageMagic.detect(head) == magic, "\(magic)")
            #expect(DiskImageMagic.detect(Array(head.prefix(offset + bytes.count - 1))) == nil, "\(magic) cut short")
        }
        #expect(DiskImageMagic.detect([UInt8](repeating: 0, count: 1024)) == nil)
    }
}
