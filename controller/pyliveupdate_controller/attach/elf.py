"""Just enough ELF64 to find a symbol's address in a file: reading it runs nothing.

Used to read CPython's ``Py_Version`` (exported since 3.11) out of a live process's memory,
so the target's exact version is known before anything touches the process.
"""
import mmap
import struct

SHT_SYMTAB = 2
SHT_DYNSYM = 11
PT_LOAD = 1
ET_EXEC = 2


class ElfError(ValueError):
    """Not an ELF64 little-endian file, or a malformed one."""


class ElfFile:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            try:
                self.data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # empty file
                raise ElfError("%s is empty" % path)
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise ElfError("%s is not a 64-bit little-endian ELF file" % path)
        try:
            (self.type,) = struct.unpack_from("<H", d, 0x10)
            self.phoff, self.shoff = struct.unpack_from("<QQ", d, 0x20)
            self.phentsize, self.phnum, self.shentsize, self.shnum = struct.unpack_from("<HHHH", d, 0x36)
        except struct.error:
            raise ElfError("%s: truncated ELF header" % path)

    def close(self):
        self.data.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _sections(self):
        for i in range(self.shnum):
            off = self.shoff + i * self.shentsize
            try:
                _name, stype, _flags, _addr, offset, size, link = struct.unpack_from(
                    "<IIQQQQI", self.data, off)
            except struct.error:
                raise ElfError("%s: truncated section table" % self.path)
            yield stype, offset, size, link

    def first_load_vaddr(self):
        """p_vaddr of the first PT_LOAD segment, page-aligned (0 for shared objects and PIE)."""
        for i in range(self.phnum):
            off = self.phoff + i * self.phentsize
            ptype, _flags, _offset, vaddr = struct.unpack_from("<IIQQ", self.data, off)
            if ptype == PT_LOAD:
                return vaddr & ~0xFFF
        return 0

    def symbol(self, name):
        """st_value of a symbol from .dynsym or .symtab, or None."""
        wanted = name.encode()
        sections = list(self._sections())
        for stype, offset, size, link in sections:
            if stype not in (SHT_DYNSYM, SHT_SYMTAB) or link >= len(sections):
                continue
            str_off = sections[link][1]
            for pos in range(offset, offset + size - 23, 24):
                st_name, _info, _other, shndx, value = struct.unpack_from("<IBBHQ", self.data, pos)
                if shndx == 0 or not st_name:
                    continue
                start = str_off + st_name
                if self.data[start:start + len(wanted) + 1] == wanted + b"\0":
                    return value
        return None
