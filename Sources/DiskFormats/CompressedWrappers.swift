#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Codecs
import DiskImage

/// The compressed wrappers a download can have: xz, gzip, zstd (decompressed once into a sparse,
/// already unlinked temporary file), zip (a stored entry is read in place; a deflated one is
/// decompressed like gzip) and tar/OVA (the first entry holding a disk image, read in place).
enum CompressedWrappers {
    /// Decompresses all of `source` with `decoder` into an unlinked sparse temporary file.
    /// `declaredSize`, when the wrapper states one, is both the expected and the maximum size.
    static func spool(_ source: any ByteSource, decoder: any StreamDecoder, wrapper: String,
                      declaredSize: UInt64?, options: DiskImageOptions) throws -> DescriptorSource {
        let env = getenv("TMPDIR").map { String(cString: $0) }
        let dir = options.temporaryDirectory ?? ((env?.isEmpty == false) ? env! : "/tmp")
        var template = Array("\(dir)/fwassemble-\(wrapper)-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw FWError(.io, "cannot create a temporary file in \(dir) to decompress the \(wrapper) image: \(String(cString: strerror(errno)))", disk: source.name)
        }
        // Unlinked at once: the file disappears when the descriptor closes, whatever happens.
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        var ok = false
        defer { if !ok { close(fd) } }

        let limit = declaredSize ?? options.maximumDecompressedSize
        var written: UInt64 = 0          // logical size so far
        var sinceCheck: UInt64 = 0       // bytes actually written since the last free-space check
        var lastProgress: UInt64 = 0
        var inputOffset: UInt64 = 0
        let checkEvery: UInt64 = 64 << 20

        func checkFreeSpace() throws {
            var st = statvfs()
            guard fstatvfs(fd, &st) == 0 else { return }
            let free = UInt64(st.f_bavail).multipliedReportingOverflow(by: UInt64(st.f_frsize))
            let available = free.overflow ? UInt64.max : free.partialValue
            guard available >= options.freeSpaceReserve + checkEvery else {
                // .io, as ENOSPC from the write itself: only a decompressed size beyond the limit is .limitExceeded.
                throw FWError(.io, "\(wrapper): no space left on device in \(dir) to decompress (\(available) bytes free, \(options.freeSpaceReserve + checkEvery) needed, after \(written) decompressed bytes, at compressed offset \(inputOffset))", disk: source.name)
            }
        }
        try checkFreeSpace()

        func write(_ chunk: UnsafeRawBufferPointer) throws {
            let (end, overflow) = written.addingReportingOverflow(UInt64(chunk.count))
            guard !overflow, end <= limit else {
                let what = declaredSize != nil ? "its declared size of \(limit) bytes" : "the limit of \(limit) bytes"
                throw FWError(.limitExceeded, "\(wrapper): decompresses to more than \(what) (a zip bomb?), at compressed offset \(inputOffset)", disk: source.name)
            }
            // Write only the non-zero 64 KiB pieces: the file stays sparse.
            var pos = 0
            while pos < chunk.count {
                let n = min(65536, chunk.count - pos)
                let piece = UnsafeRawBufferPointer(rebasing: chunk[pos..<(pos + n)])
                if !isZero(piece) {
                    var done = 0
                    while done < n {
                        let r = pwrite(fd, piece.baseAddress! + done, n - done, off_t(written) + off_t(pos + done))
                        if r < 0 {
                            if errno == EINTR { continue }
                            throw FWError(.io, "\(wrapper): cannot write the temporary file in \(dir): \(String(cString: strerror(errno)).lowercased())", disk: source.name)
                        }
                        done += r
                    }
                    sinceCheck += UInt64(n)
                    if sinceCheck >= checkEvery {
                        sinceCheck = 0
                        try checkFreeSpace()
                    }
                }
                pos += n
            }
            written = end
            if let progress = options.progress, written - lastProgress >= 16 << 20 {
                lastProgress = written
                progress(written, declaredSize)
            }
        }

        var input = [UInt8](repeating: 0, count: 1 << 20)
        do {
            while inputOffset < source.size {
                let n = Int(min(UInt64(input.count), source.size - inputOffset))
                try input.withUnsafeMutableBytes { try source.readExactly(at: inputOffset, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n])) }
                try input.withUnsafeBytes { try decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n]), write) }
                inputOffset += UInt64(n)
            }
            try decoder.finish(write)
        } catch var error as FWError {
            if error.code == .corrupt {
                error.message = "\(wrapper) image, compressed offset about \(inputOffset): \(error.message)"
            }
            throw error.within(disk: source.name)
        }
        if let declaredSize, written != declaredSize {
            throw FWError(.corrupt, "\(wrapper): decompressed to \(written) bytes, but \(declaredSize) were declared", disk: source.name)
        }
        guard ftruncate(fd, off_t(written)) == 0 else {
            throw FWError(.io, "\(wrapper): cannot size the temporary file: \(String(cString: strerror(errno)))", disk: source.name)
        }
        options.progress?(written, written)
        ok = true
        return DescriptorSource(fd: fd, size: written, name: source.name)
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            if bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
            i += 8
        }
        while i < n {
            if bytes[i] != 0 { return false }
            i += 1
        }
        return true
    }

    // MARK: zip

    /// The one file of a zip archive: stored entries are a slice of the archive, deflated ones
    /// are decompressed (checked against the entry's declared size).
    static func openZip(_ source: any ByteSource, options: DiskImageOptions) throws -> any ByteSource {
        let name = source.name
        // End of central directory: 22 bytes + a comment of up to 65535 bytes, at the end.
        let tailLength = min(source.size, 22 + 65535)
        let tail = try source.bytes(at: source.size - tailLength, count: Int(tailLength))
        guard tail.count >= 22, let eocdIndex = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
            tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 5 && tail[$0 + 3] == 6
        }) else {
            throw FWError(.corrupt, "zip: no end-of-central-directory record", disk: name)
        }
        let eocdOffset = source.size - tailLength + UInt64(eocdIndex)
        let eocd = try source.record(at: eocdOffset, count: 22, "zip end of central directory")
        var entryCount = UInt64(try eocd.u16le(at: 10))
        var cdSize = UInt64(try eocd.u32le(at: 12))
        var cdOffset = UInt64(try eocd.u32le(at: 16))
        if eocdOffset >= 20 {
            let locator = try source.record(at: eocdOffset - 20, count: 20, "zip64 end of central directory locator")
            if try locator.u32le(at: 0) == 0x0706_4B50 {
                let z64Offset = try locator.u64le(at: 8)
                let z64 = try source.record(at: z64Offset, count: 56, "zip64 end of central directory")
                guard try z64.u32le(at: 0) == 0x0606_4B50 else {
                    throw FWError(.corrupt, "zip: bad zip64 end-of-central-directory signature at offset \(z64Offset)", disk: name)
                }
                entryCount = try z64.u64le(at: 32)
                cdSize = try z64.u64le(at: 40)
                cdOffset = try z64.u64le(at: 48)
            }
        }
        guard cdSize <= 64 << 20, entryCount <= 100_000 else {
            throw FWError(.limitExceeded, "zip: central directory of \(cdSize) bytes and \(entryCount) entries is too large", disk: name)
        }
        let cd = try source.record(at: cdOffset, count: Int(cdSize), "zip central directory")
        struct Entry { var name: String; var method: UInt16; var flags: UInt16; var csize: UInt64; var usize: UInt64; var local: UInt64 }
        var files: [Entry] = []
        var pos = 0
        for _ in 0..<entryCount {
            guard try cd.u32le(at: pos) == 0x0201_4B50 else {
                throw FWError(.corrupt, "zip: bad central directory entry signature at offset \(cdOffset + UInt64(pos))", disk: name)
            }
            let nameLength = Int(try cd.u16le(at: pos + 28))
            let extraLength = Int(try cd.u16le(at: pos + 30))
            let commentLength = Int(try cd.u16le(at: pos + 32))
            var e = Entry(name: String(decoding: try cd.slice(at: pos + 46, count: nameLength), as: UTF8.self),
                          method: try cd.u16le(at: pos + 10), flags: try cd.u16le(at: pos + 8),
                          csize: UInt64(try cd.u32le(at: pos + 20)), usize: UInt64(try cd.u32le(at: pos + 24)),
                          local: UInt64(try cd.u32le(at: pos + 42)))
            // Zip64 extended information (id 1): the 0xFFFFFFFF fields, in order.
            var x = pos + 46 + nameLength
            let extraEnd = x + extraLength
            while x + 4 <= extraEnd {
                let id = try cd.u16le(at: x), size = Int(try cd.u16le(at: x + 2))
                if id == 1 {
                    var f = x + 4
                    if e.usize == 0xFFFF_FFFF { e.usize = try cd.u64le(at: f); f += 8 }
                    if e.csize == 0xFFFF_FFFF { e.csize = try cd.u64le(at: f); f += 8 }
                    if e.local == 0xFFFF_FFFF { e.local = try cd.u64le(at: f) }
                }
                x += 4 + size
            }
            pos = extraEnd + commentLength
            if !e.name.hasSuffix("/") { files.append(e) }
        }
        guard files.count == 1, let entry = files.first else {
            throw FWError(.unsupported, "zip: holds \(files.count) files; expected exactly one disk image", disk: name)
        }
        guard entry.flags & 1 == 0 else {
            throw FWError(.unsupported, "zip: \(entry.name) is encrypted", disk: name)
        }
        let local = try source.record(at: entry.local, count: 30, "zip local header of \(entry.name)")
        guard try local.u32le(at: 0) == 0x0403_4B50 else {
            throw FWError(.corrupt, "zip: bad local header signature at offset \(entry.local)", disk: name)
        }
        let dataOffset = try checkedAdd(entry.local, 30 + UInt64(try local.u16le(at: 26)) + UInt64(try local.u16le(at: 28)),
                                        "zip data offset", disk: name)
        let data = try source.slice(offset: dataOffset, length: entry.csize, name: "\(name) (zip entry \(entry.name))")
        switch entry.method {
        case 0:
            guard entry.csize == entry.usize else {
                throw FWError(.corrupt, "zip: stored entry \(entry.name) has different sizes (\(entry.csize), \(entry.usize))", disk: name)
            }
            return data
        case 8:
            let file = try spool(data, decoder: try GzipDecoder(raw: true), wrapper: "zip", declaredSize: entry.usize, options: options)
            return file
        default:
            throw FWError(.unsupported, "zip: compression method \(entry.method) of \(entry.name) is not supported (only stored and deflate)", disk: name)
        }
    }

    // MARK: tar (OVA)

    /// The regular files of a tar archive (ustar, GNU and pax headers), as slices.
    static func tarEntries(_ source: any ByteSource) throws -> [(name: String, data: SliceSource)] {
        var result: [(String, SliceSource)] = []
        var members = TarMembers(source: source, maximumHeaders: 100_000, errorPrefix: "tar: ")
        while let member = try members.next() {
            guard member.header.isRegularFile else { continue }
            let name = String(decoding: member.path, as: UTF8.self)
            result.append((name, try source.slice(offset: member.dataOffset, length: member.size, name: "\(source.name) (\(name))")))
        }
        return result
    }
}
