import DiskImage
import FileSystemEROFS
import FileSystemF2FS
import FileSystemJFFS2
import FileSystemUBIFS
import FileSystems
import Foundation
import Testing
import TestSupport

/// What the readers sharing `FileSystemReader.checked(_:inode:is:)` answer when asked for a
/// directory's entries of a file or a file's bytes of a directory: `.invalidArgument`, the
/// format and inode named, the image named once.
@Suite("Readers: the wrong type of inode")
struct ReaderTypeCheckTests {
    static let images = ["fs-erofs-plain.img", "fs-f2fs.img", "fs-jffs2-le-zlib.img", "fs-ubi-zstd.ubifs"]

    static func open(_ image: String) throws -> any FileSystemReader {
        let path = try TestImages.path(image)
        let source = try FileSource(path: path)
        switch image {
        case _ where image.hasPrefix("fs-erofs"): return try EROFSReader(source: source, name: path)
        case _ where image.hasPrefix("fs-f2fs"): return try F2FSReader(source: source, name: path)
        case _ where image.hasSuffix(".ubifs"): return try UBIFSReader(source: source, name: path)
        default: return try JFFS2Reader(source: source, name: path)
        }
    }

    @Test("a directory opened as a file and a file listed as a directory", arguments: images)
    func wrongType(image: String) throws {
        let reader = try Self.open(image)
        let directory = try #require(try reader.lookup("bin"))
        #expect(try reader.metadata(of: directory).type == .directory)
        let notFile = try #require(throws: FWError.self) { try reader.openFile(directory) }
        #expect(notFile.code == .invalidArgument)
        #expect(notFile.message == "\(reader.formatName) inode \(directory) is not a regular file")
        #expect(notFile.disk == reader.sourceName)

        let file = try #require(try reader.lookup("bin/su"))
        #expect(try reader.metadata(of: file).type == .regular)
        let notDirectory = try #require(throws: FWError.self) { try reader.directoryEntries(of: file) }
        #expect(notDirectory.code == .invalidArgument)
        #expect(notDirectory.message == "\(reader.formatName) inode \(file) is not a directory")
        #expect(notDirectory.disk == reader.sourceName)
    }
}
