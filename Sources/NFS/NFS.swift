internal import CLibNFS
