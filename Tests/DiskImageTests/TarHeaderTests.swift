import DiskImage
import Foundation
import TestSupport
import Testing

/// The one tar header parser (`TarMembers`, used by the OVA wrapper and by FileSystemTar's
/// TarReader), compared with what Python's tarfile wrote and reads back, in its three formats.
@Suite("Tar headers: one parser")
struct TarHeaderTests {
    /// Python builds an archive in `format` (names past 100 and 255 bytes, a long link name, a
    /// uid too large for octal, an empty file, a symlink, a directory) and lists it with tarfile.
    static let script = #"""
    import base64, io, json, sys, tarfile
    fmt = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[sys.argv[1]]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        def add(name, kind=tarfile.REGTYPE, data=b"", link="", uid=0):
            i = tarfile.TarInfo(name); i.type = kind; i.size = len(data); i.linkname = link; i.uid = uid
            i.mtime = 1700000000
            t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("dir", tarfile.DIRTYPE)
        add("dir/file.txt", data=b"hello\n" * 100)
        add("empty")
        add("a" * 60 + "/" + "b" * 90 + "/disk.vmdk", data=b"x" * 1000)    # ustar: prefix + name
        if fmt != tarfile.USTAR_FORMAT:
            add("long/" + "c" * 300, data=b"y" * 513)                      # GNU 'L' / pax path
            add("link", tarfile.SYMTYPE, link="t/" + "d" * 150)               # GNU 'K' / pax linkpath
            add("big-uid", data=b"z", uid=10 ** 10)                           # GNU base-256 / pax uid
    data = buf.getvalue()
    members = []
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            members.append({"path": m.name, "link": m.linkname, "size": m.size, "uid": m.uid,
                            "type": m.type.decode("latin-1"), "offset": m.offset_data})
    print(json.dumps({"tar": base64.b64encode(data).decode(), "members": members}))
    """#

    struct Listing: Decodable {
        struct Member: Decodable, Equatable { var path: String; var link: String; var size: UInt64; var uid: UInt64; var type: String; var offset: UInt64 }
        var tar: String
        var members: [Member]
    }

    static func python(_ format: String) throws -> (bytes: [UInt8], members: [Listing.Member]) {
        let json = try TestImages.run(["python3", "-c", script, format])
        let listing = try JSONDecoder().decode(Listing.self, from: json)
        return ([UInt8](try #require(Data(base64Encoded: listing.tar))), listing.members)
    }

    @Test("every member's path, link, size, uid, type and data offset are tarfile's", arguments: ["ustar", "gnu", "pax"])
    func sameAsTarfile(format: String) throws {
        let (bytes, expected) = try Self.python(format)
        var members = TarMembers(source: MemorySource(bytes, name: "t.tar"), maximumHeaders: 100)
        var got: [Listing.Member] = []
        while let m = try members.next() {
            let type = m.type == 0 ? "0" : String(UnicodeScalar(m.type))
            // tarfile shows a directory's name without the "/" it writes.
            let path = String(decoding: m.path, as: UTF8.self)
            got.append(Listing.Member(path: m.type == UInt8(ascii: "5") && path.hasSuffix("/") ? String(path.dropLast()) : path, link: String(decoding: m.linkPath, as: UTF8.self),
                                      size: m.size, uid: m.paxNumber("uid") ?? m.header.uid ?? 0, type: type, offset: m.dataOffset))
        }
        #expect(got == expected)
        #expect(members.headerCount >= expected.count)
    }

    @Test("a damaged checksum and a member running past the end are errors naming the header's offset")
    func damaged() throws {
        let (bytes, _) = try Self.python("ustar")
        var bad = bytes
        bad[0] ^= 0x01
        var members = TarMembers(source: MemorySource(bad, name: "t.tar"), maximumHeaders: 100, errorPrefix: "tar: ")
        let checksum = #expect(throws: FWError.self) { _ = try members.next() }
        #expect(checksum?.message.hasPrefix("tar: header at offset 0: checksum") == true, "\(String(describing: checksum))")

        var truncated = TarMembers(source: MemorySource(Array(bytes[0..<1024]), name: "t.tar"), maximumHeaders: 100)
        _ = try truncated.next()    // "dir/": no data
        let pastEnd = #expect(throws: FWError.self) { _ = try truncated.next() }
        #expect(pastEnd?.message == "entry at offset 512: 600 bytes of data run past the end of the archive", "\(String(describing: pastEnd))")

        var limited = TarMembers(source: MemorySource(bytes, name: "t.tar"), maximumHeaders: 1, limitCode: .corrupt)
        _ = try limited.next()
        let limit = #expect(throws: FWError.self) { _ = try limited.next() }
        #expect(limit?.code == .corrupt && limit?.message == "more than 1 entries", "\(String(describing: limit))")
    }
}
